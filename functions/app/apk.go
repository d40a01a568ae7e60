package app

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/shogo82148/androidbinary"
	"github.com/shogo82148/androidbinary/apk"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/objectstore"
)

// Manifest is what an APK's AndroidManifest.xml (with its resources.arsc)
// says about the app, with the names `aapt dump badging` uses.
type Manifest struct {
	Package            string   `json:"package"`
	VersionCode        int64    `json:"version_code"`
	VersionName        string   `json:"version_name"`
	MinSDK             int      `json:"min_sdk"`
	TargetSDK          int      `json:"target_sdk"`
	Permissions        []string `json:"permissions"`
	LaunchableActivity string   `json:"launchable_activity,omitempty"`
	Label              string   `json:"label"`
}

// Limits bound what ParseAPK reads of an archive, so that a small upload
// cannot make it decompress gigabytes (a zip bomb) or hold a huge central
// directory in memory.
type Limits struct {
	// MaxEntries is the most entries the archive may have.
	MaxEntries int
	// MaxDirectoryBytes is the largest central directory read.
	MaxDirectoryBytes int64
	// MaxEntryBytes is the largest uncompressed manifest or resource table.
	MaxEntryBytes int64
	// MaxTotalBytes is the most uncompressed bytes read over all entries.
	MaxTotalBytes int64
	// MaxRatio is the largest uncompressed:compressed ratio of an entry read.
	MaxRatio int64
}

// DefaultLimits fit every real APK: manifests are kilobytes, resource tables
// a few megabytes, and both compress by less than 20:1.
var DefaultLimits = Limits{
	MaxEntries:        100_000,
	MaxDirectoryBytes: 16 << 20,
	MaxEntryBytes:     32 << 20,
	MaxTotalBytes:     48 << 20,
	MaxRatio:          100,
}

// Archive entries ParseAPK reads.
const (
	manifestEntry  = "AndroidManifest.xml"
	resourcesEntry = "resources.arsc"
)

var packagePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)

// ParseAPK reads the manifest of the APK in r (size bytes), touching only the
// central directory, AndroidManifest.xml and resources.arsc. It returns an
// apierr Invalid naming what is wrong: not a zip archive, no manifest, a
// manifest that does not decode or lacks a valid package name, or an archive
// over lim (a zip bomb). A failure to read r that wraps
// objectstore.ErrUnavailable is returned as it is.
func ParseAPK(r io.ReaderAt, size int64, lim Limits) (m Manifest, err error) {
	if err := checkDirectory(r, size, lim); err != nil {
		return Manifest{}, err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		if errors.Is(err, objectstore.ErrUnavailable) {
			return Manifest{}, err
		}
		return Manifest{}, apierr.Wrap(apierr.Invalid, err, "the file is not an APK: it is not a zip archive")
	}
	if len(zr.File) > lim.MaxEntries {
		return Manifest{}, apierr.New(apierr.Invalid, "the APK has more than %d entries", lim.MaxEntries)
	}
	budget := lim.MaxTotalBytes
	manifestBytes, err := readEntry(zr, manifestEntry, lim, &budget)
	if err != nil {
		return Manifest{}, err
	}
	if manifestBytes == nil {
		return Manifest{}, apierr.New(apierr.Invalid, "the APK has no %s", manifestEntry)
	}
	tableBytes, err := readEntry(zr, resourcesEntry, lim, &budget)
	if err != nil {
		return Manifest{}, err
	}
	return decodeManifest(manifestBytes, tableBytes)
}

// readEntry returns the uncompressed bytes of the entry called name, nil when
// there is none, charging them to budget.
func readEntry(zr *zip.Reader, name string, lim Limits, budget *int64) ([]byte, error) {
	var f *zip.File
	for _, c := range zr.File {
		if c.Name == name {
			f = c
			break
		}
	}
	if f == nil {
		return nil, nil
	}
	declared := int64(f.UncompressedSize64)
	if f.UncompressedSize64 > uint64(lim.MaxEntryBytes) || declared > *budget {
		return nil, apierr.New(apierr.Invalid, "the APK's %s is over %d bytes uncompressed (a zip bomb?)", name, min(lim.MaxEntryBytes, *budget))
	}
	if f.Method != zip.Store && f.UncompressedSize64 > uint64(lim.MaxRatio)*max(f.CompressedSize64, 1) {
		return nil, apierr.New(apierr.Invalid, "the APK's %s is compressed more than %d:1 (a zip bomb?)", name, lim.MaxRatio)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, apierr.Wrap(apierr.Invalid, err, "the APK's %s cannot be read", name)
	}
	defer rc.Close()
	// The header's sizes may lie: never read past what it declared (and the
	// budget), whatever the data says.
	limit := min(declared, *budget)
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	switch {
	case errors.Is(err, objectstore.ErrUnavailable):
		return nil, err
	case err != nil:
		return nil, apierr.Wrap(apierr.Invalid, err, "the APK's %s is corrupted", name)
	case int64(len(b)) > limit:
		return nil, apierr.New(apierr.Invalid, "the APK's %s is larger than its header says (a zip bomb?)", name)
	}
	*budget -= int64(len(b))
	return b, nil
}

// decodeManifest decodes the binary XML manifest, resolving references
// through the resource table when there is one. The decoder is not written
// for hostile input, so a panic in it is a corrupted manifest.
func decodeManifest(manifestBytes, tableBytes []byte) (m Manifest, err error) {
	defer func() {
		if p := recover(); p != nil {
			m, err = Manifest{}, apierr.New(apierr.Invalid, "the APK's %s is corrupted", manifestEntry)
		}
	}()
	var table *androidbinary.TableFile
	if tableBytes != nil {
		table, err = androidbinary.NewTableFile(bytes.NewReader(tableBytes))
		if err != nil {
			return Manifest{}, apierr.Wrap(apierr.Invalid, err, "the APK's %s is corrupted", resourcesEntry)
		}
	}
	if len(manifestBytes) < 8 || binary.LittleEndian.Uint16(manifestBytes) != 0x0003 {
		return Manifest{}, apierr.New(apierr.Invalid, "the APK's %s is not a binary XML document", manifestEntry)
	}
	xf, err := androidbinary.NewXMLFile(bytes.NewReader(manifestBytes))
	if err != nil {
		return Manifest{}, apierr.Wrap(apierr.Invalid, err, "the APK's %s is corrupted", manifestEntry)
	}
	var am apk.Manifest
	if err := xf.Decode(&am, table, nil); err != nil {
		return Manifest{}, apierr.Wrap(apierr.Invalid, err, "the APK's %s is corrupted", manifestEntry)
	}
	m.Package = value(am.Package.String)
	if !packagePattern.MatchString(m.Package) || len(m.Package) > 255 {
		return Manifest{}, apierr.New(apierr.Invalid, "the APK's manifest has no valid package name")
	}
	code, err := am.VersionCode.Int32()
	if err != nil {
		return Manifest{}, apierr.Wrap(apierr.Invalid, err, "the APK's versionCode is not a number")
	}
	if code < 0 {
		return Manifest{}, apierr.New(apierr.Invalid, "the APK's versionCode is negative")
	}
	m.VersionCode = int64(code)
	m.VersionName = value(am.VersionName.String)
	minSDK, err := am.SDK.Min.Int32()
	if err != nil || minSDK <= 0 {
		minSDK = 1 // Android's default when uses-sdk says nothing
	}
	target, err := am.SDK.Target.Int32()
	if err != nil || target <= 0 {
		target = minSDK // Android's default
	}
	m.MinSDK, m.TargetSDK = int(minSDK), int(target)
	m.Permissions = []string{}
	for _, p := range am.UsesPermissions {
		if name := value(p.Name.String); name != "" {
			m.Permissions = append(m.Permissions, name)
		}
	}
	m.Label = value(am.App.Label.String)
	m.LaunchableActivity = launchable(am, m.Package)
	return m, nil
}

// launchable names the first activity (or alias) that handles MAIN in the
// LAUNCHER category, with its class name made absolute as aapt does.
func launchable(am apk.Manifest, pkg string) string {
	launcher := func(filters []apk.ActivityIntentFilter) bool {
		for _, f := range filters {
			main, cat := false, false
			for _, a := range f.Actions {
				main = main || value(a.Name.String) == "android.intent.action.MAIN"
			}
			for _, c := range f.Categories {
				cat = cat || value(c.Name.String) == "android.intent.category.LAUNCHER"
			}
			if main && cat {
				return true
			}
		}
		return false
	}
	for _, a := range am.App.Activities {
		if launcher(a.IntentFilters) {
			return className(pkg, value(a.Name.String))
		}
	}
	for _, a := range am.App.ActivityAliases {
		if launcher(a.IntentFilters) {
			return className(pkg, value(a.Name.String))
		}
	}
	return ""
}

func className(pkg, name string) string {
	switch {
	case name == "":
		return ""
	case strings.HasPrefix(name, "."):
		return pkg + name
	case !strings.Contains(name, "."):
		return pkg + "." + name
	}
	return name
}

// value returns what get yields, "" when it fails: an absent attribute, or a
// reference that cannot be resolved (without a resource table the decoder
// panics on one).
func value(get func() (string, error)) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	s, err := get()
	if err != nil {
		return ""
	}
	return s
}

// checkDirectory reads the end-of-central-directory record and refuses an
// archive whose central directory is over lim before archive/zip loads it
// all into memory. An archive without the record is left to archive/zip to
// refuse.
func checkDirectory(r io.ReaderAt, size int64, lim Limits) error {
	const eocdLen, maxComment = 22, 65535
	tailLen := min(size, eocdLen+maxComment)
	if tailLen < eocdLen {
		return apierr.New(apierr.Invalid, "the file is not an APK: it is not a zip archive")
	}
	tail := make([]byte, tailLen)
	if _, err := r.ReadAt(tail, size-tailLen); err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, objectstore.ErrUnavailable) {
			return err
		}
		return fmt.Errorf("read the archive's end: %w", err)
	}
	i := bytes.LastIndex(tail, []byte{'P', 'K', 5, 6})
	if i < 0 || len(tail)-i < eocdLen {
		return apierr.New(apierr.Invalid, "the file is not an APK: it is not a zip archive")
	}
	entries := int64(binary.LittleEndian.Uint16(tail[i+10:]))
	dirSize := int64(binary.LittleEndian.Uint32(tail[i+12:]))
	if entries == 0xffff || dirSize == 0xffffffff {
		// Zip64, which no APK under the upload limit needs and Android's
		// installer refuses.
		return apierr.New(apierr.Invalid, "the APK is a zip64 archive, which Android does not install")
	}
	if entries > int64(lim.MaxEntries) || dirSize > lim.MaxDirectoryBytes {
		return apierr.New(apierr.Invalid, "the APK's central directory is over %d entries or %d bytes", lim.MaxEntries, lim.MaxDirectoryBytes)
	}
	return nil
}
