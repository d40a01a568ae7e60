// Package config fills a typed configuration struct once, from the environment
// and from secret files, with defaults written beside each field.
//
//	type Config struct {
//		DatabaseURL string        `env:"DATABASE_URL" default:"postgres://localhost/postgres"`
//		Timeout     time.Duration `env:"TIMEOUT" default:"5s"`
//		SigningKey  string        `env:"USER_TOKEN_KEY" secret:"user-token-key"`
//	}
//
// A field tagged secret is read from the file of that name in the secret
// directories (OpenFaaS mounts /var/openfaas/secrets, Knative a volume named by
// CLOUDPHONE_SECRETS_DIR); the environment variable is the fallback for local use.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Source is where values come from: the environment plus secret directories.
type Source struct {
	Env        map[string]string
	SecretDirs []string
}

// FromEnvironment returns the process environment and the standard secret
// directories: $CLOUDPHONE_SECRETS_DIR (if set), then /var/openfaas/secrets.
func FromEnvironment() Source {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return Source{Env: env, SecretDirs: secretDirs(env)}
}

// FromMap returns a source backed by m (and the secret directories it names).
func FromMap(m map[string]string) Source {
	return Source{Env: m, SecretDirs: secretDirs(m)}
}

func secretDirs(env map[string]string) []string {
	var dirs []string
	if d := env["CLOUDPHONE_SECRETS_DIR"]; d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, "/var/openfaas/secrets")
}

// Lookup returns the value for name from the environment.
func (s Source) Lookup(name string) (string, bool) {
	v, ok := s.Env[name]
	return v, ok && v != ""
}

// Load fills the exported fields of the struct dst points to. It fails on a
// value that does not parse or a field tagged required that has no value.
func Load(src Source, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a pointer to a struct, got %T", dst)
	}
	return load(src, v.Elem())
}

func load(src Source, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() && f.Tag.Get("env") == "" {
			if err := load(src, fv); err != nil {
				return err
			}
			continue
		}
		name := f.Tag.Get("env")
		secret := f.Tag.Get("secret")
		if name == "" && secret == "" {
			continue
		}
		raw, ok := "", false
		if secret != "" {
			raw, ok = src.readSecret(secret)
		}
		if !ok && name != "" {
			raw, ok = src.Lookup(name)
		}
		if !ok {
			raw, ok = f.Tag.Lookup("default")
		}
		if !ok {
			if f.Tag.Get("required") == "true" {
				return fmt.Errorf("config: %s is required", firstNonEmpty(name, secret))
			}
			continue
		}
		if err := set(fv, raw); err != nil {
			return fmt.Errorf("config: %s=%q: %w", firstNonEmpty(name, secret), raw, err)
		}
	}
	return nil
}

func (s Source) readSecret(name string) (string, bool) {
	for _, dir := range s.SecretDirs {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return strings.TrimSpace(string(b)), true
		}
	}
	return "", false
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func set(v reflect.Value, raw string) error {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return err
		}
		v.SetFloat(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported slice type %s", v.Type())
		}
		var parts []string
		for p := range strings.SplitSeq(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}
