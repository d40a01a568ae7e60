//go:build unix

package rehearse

import (
	"os"
	"syscall"
)

// socketGroup is the group owning the file at path.
func socketGroup(path string) (int, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Gid), true
}
