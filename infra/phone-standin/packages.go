package main

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode/utf16"
)

// Paths inside the phone, as on Android.
const (
	uploadDir    = "/data/local/tmp"
	packagesList = "/data/system/packages.list"
	appDir       = "/data/app"
)

// installError is a refusal by the package manager, printed as
// "Failure [CODE: detail]".
type installError struct{ code, detail string }

func (e *installError) Error() string {
	if e.detail == "" {
		return e.code
	}
	return e.code + ": " + e.detail
}

// packageManager records installed packages in packages.list, one line
// per package in Android's format "<package> <uid> 0 /data/user/0/<package>
// default none", and keeps each APK at /data/app/<package>-1/base.apk.
type packageManager struct {
	fs files
	mu sync.Mutex
}

var validPkg = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)

// install installs the APK at the device path apk and returns its package.
// It reads the package name from the APK's binary manifest and refuses an
// APK that carries no signature at all (neither a v1 signature in META-INF
// nor an APK Signing Block), as Android does; it does not verify the
// signature, which a stand-in has no use for.
func (pm *packageManager) install(apk string) (string, error) {
	host := pm.fs.host(apk)
	fi, err := os.Stat(host)
	if err != nil || fi.IsDir() {
		return "", &installError{"INSTALL_FAILED_INVALID_URI", "no APK at " + apk}
	}
	pkg, err := inspectAPK(host)
	if err != nil {
		return "", err
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	dir := pm.fs.host(filepath.Join(appDir, pkg+"-1"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", &installError{"INSTALL_FAILED_INSUFFICIENT_STORAGE", err.Error()}
	}
	if err := copyFile(host, filepath.Join(dir, "base.apk")); err != nil {
		return "", &installError{"INSTALL_FAILED_INSUFFICIENT_STORAGE", err.Error()}
	}
	pkgs, err := pm.read()
	if err != nil {
		return "", err
	}
	if _, ok := pkgs[pkg]; !ok {
		pkgs[pkg] = fmt.Sprintf("%s %d 0 /data/user/0/%s default none", pkg, 10000+len(pkgs), pkg)
	}
	return pkg, pm.write(pkgs)
}

// installStream installs an APK of size bytes read from r (what `adb
// install` streams with `cmd package install -S SIZE`).
func (pm *packageManager) installStream(r io.Reader, size int64) (string, error) {
	dir := pm.fs.host(appDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", &installError{"INSTALL_FAILED_INSUFFICIENT_STORAGE", err.Error()}
	}
	tmp, err := os.CreateTemp(dir, "vmdl-*.tmp")
	if err != nil {
		return "", &installError{"INSTALL_FAILED_INSUFFICIENT_STORAGE", err.Error()}
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(r, size))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != size {
		return "", &installError{"INSTALL_FAILED_INVALID_APK", fmt.Sprintf("received %d of %d bytes", n, size)}
	}
	return pm.install(filepath.Join(appDir, filepath.Base(tmp.Name())))
}

func (pm *packageManager) uninstall(pkg string) error {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	pkgs, err := pm.read()
	if err != nil {
		return err
	}
	if _, ok := pkgs[pkg]; !ok {
		return &installError{"DELETE_FAILED_INTERNAL_ERROR", ""}
	}
	delete(pkgs, pkg)
	_ = os.RemoveAll(pm.fs.host(filepath.Join(appDir, pkg+"-1")))
	return pm.write(pkgs)
}

// list returns the installed packages, sorted.
func (pm *packageManager) list() ([]string, error) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	pkgs, err := pm.read()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(pkgs))
	for p := range pkgs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func (pm *packageManager) read() (map[string]string, error) {
	out := map[string]string{}
	b, err := os.ReadFile(pm.fs.host(packagesList))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out[f[0]] = line
		}
	}
	return out, nil
}

func (pm *packageManager) write(pkgs map[string]string) error {
	lines := make([]string, 0, len(pkgs))
	for _, l := range pkgs {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	dst := pm.fs.host(packagesList)
	if err := os.MkdirAll(filepath.Dir(dst), 0o777); err != nil {
		return err
	}
	data := strings.Join(lines, "\n")
	if data != "" {
		data += "\n"
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// inspectAPK checks that path is a signed APK and returns its package.
func inspectAPK(path string) (string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return "", &installError{"INSTALL_PARSE_FAILED_NOT_APK", "not a zip archive"}
	}
	defer zr.Close()
	var manifest *zip.File
	v1 := false
	for _, f := range zr.File {
		switch {
		case f.Name == "AndroidManifest.xml":
			manifest = f
		case strings.HasPrefix(f.Name, "META-INF/") && (strings.HasSuffix(f.Name, ".RSA") ||
			strings.HasSuffix(f.Name, ".DSA") || strings.HasSuffix(f.Name, ".EC")):
			v1 = true
		}
	}
	if manifest == nil {
		return "", &installError{"INSTALL_PARSE_FAILED_BAD_MANIFEST", "no AndroidManifest.xml"}
	}
	rc, err := manifest.Open()
	if err != nil {
		return "", &installError{"INSTALL_PARSE_FAILED_BAD_MANIFEST", err.Error()}
	}
	data, err := io.ReadAll(io.LimitReader(rc, 4<<20))
	rc.Close()
	if err != nil {
		return "", &installError{"INSTALL_PARSE_FAILED_BAD_MANIFEST", err.Error()}
	}
	pkg, err := manifestPackage(data)
	if err != nil {
		return "", &installError{"INSTALL_PARSE_FAILED_BAD_MANIFEST", err.Error()}
	}
	if !validPkg.MatchString(pkg) {
		return "", &installError{"INSTALL_PARSE_FAILED_BAD_PACKAGE_NAME", "invalid package name " + pkg}
	}
	if !v1 && !hasSigningBlock(path) {
		return "", &installError{"INSTALL_PARSE_FAILED_NO_CERTIFICATES", "no signature found in package"}
	}
	return pkg, nil
}

// hasSigningBlock reports whether the APK holds an APK Signing Block (v2+
// signatures): its magic sits just before the central directory.
func hasSigningBlock(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < 22 {
		return false
	}
	// The end-of-central-directory record is in the last 64 KiB + 22 bytes.
	n := min(fi.Size(), 65535+22)
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, fi.Size()-n); err != nil {
		return false
	}
	i := bytes.LastIndex(tail, []byte("PK\x05\x06"))
	if i < 0 || len(tail)-i < 22 {
		return false
	}
	cd := int64(binary.LittleEndian.Uint32(tail[i+16:]))
	if cd < 24 {
		return false
	}
	var magic [16]byte
	if _, err := f.ReadAt(magic[:], cd-16); err != nil {
		return false
	}
	return string(magic[:]) == "APK Sig Block 42"
}

// manifestPackage reads the package attribute of the manifest element: from
// Android's binary XML (what aapt writes), or from plain XML.
func manifestPackage(b []byte) (string, error) {
	if len(b) >= 8 && binary.LittleEndian.Uint16(b) == 0x0003 {
		return binaryManifestPackage(b)
	}
	var m struct {
		XMLName xml.Name `xml:"manifest"`
		Package string   `xml:"package,attr"`
	}
	if err := xml.Unmarshal(b, &m); err != nil || m.Package == "" {
		return "", errors.New("the manifest names no package")
	}
	return m.Package, nil
}

// Chunk types of Android's binary XML.
const (
	chunkStringPool   = 0x0001
	chunkStartElement = 0x0102
	stringPoolUTF8    = 1 << 8
	typeString        = 0x03
)

// binaryManifestPackage walks the chunks of a binary XML document: the
// string pool, then the first start element (manifest) and its package
// attribute.
func binaryManifestPackage(b []byte) (string, error) {
	bad := errors.New("malformed binary manifest")
	u16 := func(o int) int { return int(binary.LittleEndian.Uint16(b[o:])) }
	u32 := func(o int) int { return int(binary.LittleEndian.Uint32(b[o:])) }
	var pool []string
	off := u16(2) // the document header's size
	for off+8 <= len(b) {
		typ, hsize, size := u16(off), u16(off+2), u32(off+4)
		if size < 8 || off+size > len(b) || hsize > size {
			return "", bad
		}
		chunk := b[off : off+size]
		switch typ {
		case chunkStringPool:
			if hsize < 28 {
				return "", bad
			}
			p, err := readStringPool(chunk, hsize)
			if err != nil {
				return "", err
			}
			pool = p
		case chunkStartElement:
			if size < hsize+20 {
				return "", bad
			}
			ext := hsize
			name := int(int32(binary.LittleEndian.Uint32(chunk[ext+4:])))
			if name < 0 || name >= len(pool) || pool[name] != "manifest" {
				return "", errors.New("the first element is not manifest")
			}
			attrStart := int(binary.LittleEndian.Uint16(chunk[ext+8:]))
			attrSize := int(binary.LittleEndian.Uint16(chunk[ext+10:]))
			count := int(binary.LittleEndian.Uint16(chunk[ext+12:]))
			for i := 0; i < count; i++ {
				a := ext + attrStart + i*attrSize
				if attrSize < 20 || a+20 > len(chunk) {
					return "", bad
				}
				an := int(int32(binary.LittleEndian.Uint32(chunk[a+4:])))
				if an < 0 || an >= len(pool) || pool[an] != "package" {
					continue
				}
				raw := int(int32(binary.LittleEndian.Uint32(chunk[a+8:])))
				if raw < 0 && chunk[a+15] == typeString {
					raw = int(binary.LittleEndian.Uint32(chunk[a+16:]))
				}
				if raw < 0 || raw >= len(pool) {
					return "", bad
				}
				return pool[raw], nil
			}
			return "", errors.New("the manifest names no package")
		}
		off += size
	}
	return "", errors.New("no manifest element")
}

func readStringPool(c []byte, hsize int) ([]string, error) {
	bad := errors.New("malformed string pool")
	count := int(binary.LittleEndian.Uint32(c[8:]))
	flags := binary.LittleEndian.Uint32(c[16:])
	start := int(binary.LittleEndian.Uint32(c[20:]))
	if count > len(c)/4 || hsize+4*count > len(c) || start > len(c) {
		return nil, bad
	}
	out := make([]string, count)
	for i := range out {
		o := start + int(binary.LittleEndian.Uint32(c[hsize+4*i:]))
		if o >= len(c) {
			return nil, bad
		}
		if flags&stringPoolUTF8 != 0 {
			// UTF-16 length, then UTF-8 length (each one or two bytes).
			_, o = lenUTF8(c, o)
			n, o2 := lenUTF8(c, o)
			if o2 < 0 || o2+n > len(c) {
				return nil, bad
			}
			out[i] = string(c[o2 : o2+n])
			continue
		}
		if o+2 > len(c) {
			return nil, bad
		}
		n := int(binary.LittleEndian.Uint16(c[o:]))
		o += 2
		if n&0x8000 != 0 {
			if o+2 > len(c) {
				return nil, bad
			}
			n = (n&0x7fff)<<16 | int(binary.LittleEndian.Uint16(c[o:]))
			o += 2
		}
		if o+2*n > len(c) {
			return nil, bad
		}
		u := make([]uint16, n)
		for j := range u {
			u[j] = binary.LittleEndian.Uint16(c[o+2*j:])
		}
		out[i] = string(utf16.Decode(u))
	}
	return out, nil
}

// lenUTF8 reads a one- or two-byte length of a UTF-8 pool string at o.
func lenUTF8(c []byte, o int) (int, int) {
	if o >= len(c) {
		return 0, -1
	}
	n := int(c[o])
	if n&0x80 == 0 {
		return n, o + 1
	}
	if o+1 >= len(c) {
		return 0, -1
	}
	return (n&0x7f)<<8 | int(c[o+1]), o + 2
}
