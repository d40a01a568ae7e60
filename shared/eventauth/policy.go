package eventauth

import (
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// Policy is which sender may send which event types: the broker's
// EventPolicies, rendered from the catalog for Knative and enforced as they
// are by the embedded and the deployable broker. The zero value allows
// nothing. A Policy is read-only once made and safe for concurrent use.
type Policy struct {
	types   map[string]map[string]bool // sender → event types
	members map[string]string          // function → its sender identity
}

// NewPolicy returns the policy allowing each sender the event types listed
// for it.
func NewPolicy(allow map[string][]string) *Policy {
	p := &Policy{types: map[string]map[string]bool{}, members: map[string]string{}}
	for sender, types := range allow {
		for _, t := range types {
			p.Allow(sender, t)
		}
	}
	return p
}

// Allow adds typ to what sender may send. Call it only while building.
func (p *Policy) Allow(sender, typ string) {
	if p.types[sender] == nil {
		p.types[sender] = map[string]bool{}
	}
	p.types[sender][typ] = true
}

// Member records that function sends (its replies) as sender. Call it only
// while building.
func (p *Policy) Member(function, sender string) { p.members[function] = sender }

// Allows reports whether sender may send events of type typ.
func (p *Policy) Allows(sender, typ string) bool {
	return p != nil && p.types[sender][typ]
}

// SenderOf returns the identity function's replies are sent as, or "".
func (p *Policy) SenderOf(function string) string {
	if p == nil {
		return ""
	}
	return p.members[function]
}

// Senders lists the senders, sorted.
func (p *Policy) Senders() []string {
	out := make([]string, 0, len(p.types))
	for s := range p.types {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Types lists what sender may send, sorted.
func (p *Policy) Types(sender string) []string {
	out := make([]string, 0, len(p.types[sender]))
	for t := range p.types[sender] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Check returns nil when sender may send typ, else an apierr Forbidden that
// names both.
func (p *Policy) Check(sender, typ string) error {
	if p.Allows(sender, typ) {
		return nil
	}
	return apierr.New(apierr.Forbidden, "%s may not send events of type %s", sender, typ)
}

// ContextOfDatabase returns the context owning database: a context's database
// is named cloudphone_<context>.
func ContextOfDatabase(database string) string {
	return strings.TrimPrefix(database, "cloudphone_")
}

// Receiver is what an event function admits: a valid token for its own name
// from one of its senders (the broker, and the callers the catalog names).
type Receiver struct {
	Verifier *Verifier // nil refuses every event that did not come in-process
	Senders  []string
}

// Admit returns the sender of an event r delivers to function, or an apierr
// Unauthorized (no valid token) or Forbidden (a sender it does not admit).
// An event handed over in-process (WithSender) needs no token.
func (rc *Receiver) Admit(r *http.Request, function string) (string, error) {
	sender := SenderFrom(r.Context())
	if sender == "" {
		if rc.Verifier == nil {
			return "", apierr.New(apierr.Unauthorized, "this process has no key to check event senders with")
		}
		var err error
		if sender, err = rc.Verifier.FromRequest(r, function); err != nil {
			return "", err
		}
	}
	if !slices.Contains(rc.Senders, sender) {
		return "", apierr.New(apierr.Forbidden, "%s takes events only from %v, not from %s", function, rc.Senders, sender)
	}
	return sender, nil
}
