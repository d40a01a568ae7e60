//go:build !unix

package rehearse

// socketGroup is unknown where files have no Unix group.
func socketGroup(string) (int, bool) { return 0, false }
