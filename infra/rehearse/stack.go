package rehearse

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/infra/manifests"
)

// Unit is one OpenFaaS function of stack.yml as the rehearsal runs it: a
// context's bundle, a long-running function's own, or the broker.
type Unit struct {
	Name string
	manifests.StackFunction
	// Functions are the catalog functions it serves (its FUNCTIONS), none
	// for the broker.
	Functions []string
}

// ReadStack reads the units of the stack.yml at path, in name order.
func ReadStack(path string) ([]Unit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st manifests.Stack
	if err := yaml.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	var units []Unit
	for name, fn := range st.Functions {
		u := Unit{Name: name, StackFunction: fn}
		if list := fn.Environment["FUNCTIONS"]; list != "" {
			for f := range strings.SplitSeq(list, ",") {
				if _, ok := catalog.ByName(f); !ok {
					return nil, fmt.Errorf("%s: %s serves %q, which the catalog does not have", filepath.Base(path), name, f)
				}
				u.Functions = append(u.Functions, f)
			}
		}
		units = append(units, u)
	}
	slices.SortFunc(units, func(a, b Unit) int { return strings.Compare(a.Name, b.Name) })
	return units, nil
}

// Serves reports whether u serves the function called name.
func (u Unit) Serves(name string) bool { return slices.Contains(u.Functions, name) }
