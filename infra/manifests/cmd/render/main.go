// Command render writes the deployment descriptors rendered from the function
// catalog (infra/knative/*.yaml, triggers/*.yaml, stack.yml) and the API
// reference (manifests.APIFile) and deletes the
// generated files that are no longer rendered. With -check it changes nothing
// and exits 1, listing every difference, when the files are out of date.
// With -list it prints the catalog's function names, one a line, and renders
// nothing.
//
//	go run ./infra/manifests/cmd/render [-root .] [-check | -list | -bundles]
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/infra/manifests"
)

func main() {
	root := flag.String("root", ".", "repository root")
	check := flag.Bool("check", false, "only report differences; exit 1 if any")
	list := flag.Bool("list", false, "print the function names, one a line")
	bundles := flag.Bool("bundles", false, "print the OpenFaaS bundle names, one a line")
	flag.Parse()
	if *list {
		for _, s := range catalog.All() {
			fmt.Println(s.Name)
		}
		return
	}
	if *bundles {
		for _, name := range slices.Sorted(maps.Keys(catalog.Bundles())) {
			fmt.Println(name)
		}
		return
	}
	os.Exit(run(*root, *check))
}

func run(root string, check bool) int {
	files, err := manifests.Render(catalog.All(), manifests.Options{Source: root})
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		return 2
	}
	if check {
		diffs, err := manifests.Diff(root, files)
		if err != nil {
			fmt.Fprintln(os.Stderr, "render:", err)
			return 2
		}
		for _, d := range diffs {
			fmt.Println(d)
		}
		if len(diffs) > 0 {
			fmt.Fprintln(os.Stderr, "render: generated manifests are out of date; run `make manifests`")
			return 1
		}
		return 0
	}
	changed, err := manifests.Write(root, files)
	for _, c := range changed {
		fmt.Println("updated", c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		return 2
	}
	fmt.Printf("render: %d files rendered, %d changed\n", len(files), len(changed))
	return 0
}
