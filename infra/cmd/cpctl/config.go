package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// config is what cpctl keeps between runs: where the platform is and the
// signed-in user's tokens. The file is written with mode 0600 in a 0700
// directory, replaced atomically.
type config struct {
	URL          string `json:"url"`
	Username     string `json:"username,omitempty"`
	AccessToken  string `json:"access_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// configPath is --config, $CPCTL_CONFIG, $XDG_CONFIG_HOME/cpctl/config.json
// or ~/.config/cpctl/config.json, the first that is set.
func (a *app) configPath(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if p := a.env("CPCTL_CONFIG"); p != "" {
		return p, nil
	}
	if x := a.env("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "cpctl", "config.json"), nil
	}
	home := a.env("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no config file: set --config, CPCTL_CONFIG, XDG_CONFIG_HOME or HOME")
		}
		home = h
	}
	return filepath.Join(home, ".config", "cpctl", "config.json"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string) (config, error) {
	var c config
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("config %s is not valid JSON: %w", path, err)
	}
	return c, nil
}

// save writes c to path with mode 0600.
func (c config) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	return nil
}

// normalizeURL trims a platform URL and checks its scheme.
func normalizeURL(u string) (string, error) {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return "", exitf(exitUsage, "platform URL %q must start with http:// or https://", u)
	}
	return u, nil
}
