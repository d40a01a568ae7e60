package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

type sample struct {
	URL     string        `env:"URL" default:"postgres://x"`
	Timeout time.Duration `env:"TIMEOUT" default:"2s"`
	Workers int           `env:"WORKERS" default:"4"`
	Debug   bool          `env:"DEBUG"`
	Proxies []string      `env:"PROXIES"`
	Key     string        `env:"KEY" secret:"signing-key"`
	Nested  struct {
		Rate float64 `env:"RATE" default:"1.5"`
	}
}

func TestLoadAppliesDefaultsEnvAndSecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signing-key"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := FromMap(map[string]string{
		"CLOUDPHONE_SECRETS_DIR": dir,
		"WORKERS":                "9",
		"DEBUG":                  "true",
		"PROXIES":                "10.0.0.0/8, 127.0.0.1/32",
		"KEY":                    "from-env",
	})
	var c sample
	if err := Load(src, &c); err != nil {
		t.Fatal(err)
	}
	if c.URL != "postgres://x" || c.Timeout != 2*time.Second || c.Workers != 9 || !c.Debug {
		t.Fatalf("unexpected %+v", c)
	}
	if len(c.Proxies) != 2 || c.Proxies[1] != "127.0.0.1/32" {
		t.Fatalf("proxies %q", c.Proxies)
	}
	if c.Key != "from-file" {
		t.Fatalf("secret file should win over env, got %q", c.Key)
	}
	if c.Nested.Rate != 1.5 {
		t.Fatalf("nested default not applied: %v", c.Nested.Rate)
	}
}

func TestLoadRejectsUnparsableAndMissingRequired(t *testing.T) {
	t.Parallel()
	var c sample
	if err := Load(FromMap(map[string]string{"WORKERS": "many"}), &c); err == nil {
		t.Fatal("want error for WORKERS=many")
	}
	var r struct {
		Must string `env:"MUST" required:"true"`
	}
	if err := Load(FromMap(nil), &r); err == nil {
		t.Fatal("want error for missing required value")
	}
}
