// Command function serves one function (FUNCTION=name, one Knative Service
// each) or one context's bundle (FUNCTIONS=a,b,c, one OpenFaaS function per
// context) with the platform's runtime contract. It links every function of
// the catalog; the images of single functions use the per-function binaries
// of assembly/cmd/mains instead, which link one.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/assembly/serve"
	"github.com/cloudphone/cloudphone/shared/function"
)

func main() {
	entries, err := pick()
	if err != nil {
		fmt.Fprintln(os.Stderr, "function:", err)
		os.Exit(1)
	}
	serve.Main(entries...)
}

func pick() ([]function.Entry, error) {
	names := os.Getenv("FUNCTIONS")
	if names == "" {
		names = os.Getenv("FUNCTION")
	}
	if names == "" && len(os.Args) > 1 {
		names = os.Args[1]
	}
	if names == "" {
		return nil, fmt.Errorf("set FUNCTION (one function) or FUNCTIONS (a comma-separated bundle)")
	}
	var entries []function.Entry
	for n := range strings.SplitSeq(names, ",") {
		e, ok := catalog.Entry(strings.TrimSpace(n))
		if !ok {
			return nil, fmt.Errorf("no function named %q", n)
		}
		entries = append(entries, e)
	}
	return entries, nil
}
