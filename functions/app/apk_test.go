package app_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
	"github.com/cloudphone/cloudphone/shared/apierr"
)

func TestParseAPKAgreesWithAaptDumpBadging(t *testing.T) {
	t.Parallel()
	cases := map[string]apptest.Spec{
		"defaults": {},
		"permissions and a label with spaces": {
			Package: "org.cloudphone.camera", VersionCode: 42, VersionName: "2.5.1-beta", MinSDK: 21, TargetSDK: 34,
			Permissions: []string{"android.permission.INTERNET", "android.permission.CAMERA"}, Label: "Camera Test",
			Activity: "org.cloudphone.camera.ui.Start",
		},
		"no launchable activity": {Package: "com.example.service", VersionCode: 3, Activity: "-"},
		"unqualified activity":   {Package: "com.example.plain", VersionCode: 9, Activity: "Home"},
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := apptest.Build(t, spec)
			want := apptest.DumpBadging(t, path)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := app.ParseAPK(bytes.NewReader(b), int64(len(b)), app.DefaultLimits)
			if err != nil {
				t.Fatalf("ParseAPK: %v", err)
			}
			if got.Package != want.Package || got.VersionCode != want.VersionCode || got.VersionName != want.VersionName ||
				got.MinSDK != want.MinSDK || got.TargetSDK != want.TargetSDK || got.Label != want.Label ||
				got.LaunchableActivity != want.LaunchableActivity || !slices.Equal(got.Permissions, nonNil(want.Permissions)) {
				t.Fatalf("ParseAPK = %+v\naapt says %+v", got, want)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// zipOf builds a zip archive of the named entries, deflated.
func zipOf(t *testing.T, entries map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range entries {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// realEntries returns the entries of a freshly built APK.
func realEntries(t *testing.T) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(apptest.Build(t, apptest.Spec{Unsigned: true}))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestParseAPKRefusesWhatIsNotAnAPK(t *testing.T) {
	t.Parallel()
	real := realEntries(t)
	manifest := real["AndroidManifest.xml"]
	truncated := bytes.Clone(manifest[:len(manifest)/2])
	scrambled := bytes.Clone(manifest)
	for i := 8; i < len(scrambled); i += 7 {
		scrambled[i] ^= 0xa5
	}
	cases := map[string]struct {
		archive []byte
		limits  app.Limits
		message string
	}{
		"not a zip":     {archive: []byte(strings.Repeat("this is a text file, not an archive\n", 100)), message: "not a zip archive"},
		"empty zip":     {archive: zipOf(t, map[string][]byte{}), message: "no AndroidManifest.xml"},
		"no manifest":   {archive: zipOf(t, map[string][]byte{"classes.dex": []byte("dex\n035")}), message: "no AndroidManifest.xml"},
		"text manifest": {archive: zipOf(t, map[string][]byte{"AndroidManifest.xml": []byte(`<manifest package="a.b"/>`)}), message: "not a binary XML"},
		"truncated manifest": {archive: zipOf(t, map[string][]byte{"AndroidManifest.xml": truncated,
			"resources.arsc": real["resources.arsc"]}), message: "AndroidManifest.xml is corrupted"},
		"scrambled manifest": {archive: zipOf(t, map[string][]byte{"AndroidManifest.xml": scrambled,
			"resources.arsc": real["resources.arsc"]}), message: "AndroidManifest.xml"},
		"manifest deflated more than the ratio allows": {
			archive: zipOf(t, map[string][]byte{"AndroidManifest.xml": make([]byte, 10<<20)}),
			message: "compressed more than 100:1",
		},
		"manifest over the entry limit": {
			archive: zipOf(t, map[string][]byte{"AndroidManifest.xml": manifest}),
			limits:  app.Limits{MaxEntries: 10, MaxDirectoryBytes: 1 << 20, MaxEntryBytes: 100, MaxTotalBytes: 1 << 20, MaxRatio: 100},
			message: "over 100 bytes uncompressed",
		},
		"entries over the total limit": {
			archive: zipOf(t, real),
			limits: app.Limits{MaxEntries: 10, MaxDirectoryBytes: 1 << 20, MaxEntryBytes: 1 << 20,
				MaxTotalBytes: int64(len(manifest)) + 10, MaxRatio: 100},
			message: "resources.arsc is over",
		},
		"too many entries": {
			archive: zipOf(t, map[string][]byte{"a": nil, "b": nil, "c": nil}),
			limits:  app.Limits{MaxEntries: 2, MaxDirectoryBytes: 1 << 20, MaxEntryBytes: 1 << 20, MaxTotalBytes: 1 << 20, MaxRatio: 100},
			message: "central directory is over 2 entries",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lim := c.limits
			if lim == (app.Limits{}) {
				lim = app.DefaultLimits
			}
			_, err := app.ParseAPK(bytes.NewReader(c.archive), int64(len(c.archive)), lim)
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Code != apierr.Invalid || !strings.Contains(ae.Message, c.message) {
				t.Fatalf("ParseAPK = %v, want invalid saying %q", err, c.message)
			}
		})
	}
}

// TestParseAPKDoesNotTrustTheHeaderSizes: an entry whose local data inflates
// to more than its header declares is refused after reading only what was
// declared.
func TestParseAPKDoesNotTrustTheHeaderSizes(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{0x03, 0x00, 0x08, 0x00}, 1<<16) // 256 KiB that deflate well
	archive := zipOf(t, map[string][]byte{"AndroidManifest.xml": big})
	// Rewrite the central directory's uncompressed size to 1 KiB: the
	// ratio check passes, the data is larger than declared.
	i := bytes.LastIndex(archive, []byte{'P', 'K', 1, 2})
	if i < 0 {
		t.Fatal("no central directory entry")
	}
	copy(archive[i+24:i+28], []byte{0x00, 0x04, 0x00, 0x00})
	_, err := app.ParseAPK(bytes.NewReader(archive), int64(len(archive)), app.DefaultLimits)
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.Invalid {
		t.Fatalf("ParseAPK = %v, want invalid", err)
	}
}
