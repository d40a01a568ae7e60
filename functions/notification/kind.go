package notification

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
)

// Kind is one type of notification: the event it comes from, how its user
// is found in the event, how it reads (text/template for the title and body,
// which are plain text everywhere; the email's HTML body is html/template, so
// whatever a user chose — a name, a reason — is escaped there), and which
// channels are on until the user says otherwise.
type Kind struct {
	// Type is the name users see and choose preferences and webhooks by:
	// the event type without "cloudphone." (and, for quota.exceeded,
	// without its context).
	Type string
	// EventType is the CloudEvents type it is made from.
	EventType string
	// Defaults are the channels on when the user has no preference.
	Defaults Channels

	decode func(e event.Event) (userID string, data any, err error)
	title  *template.Template
	body   *template.Template
}

// Channels says which ways of telling a user are on.
type Channels struct {
	InApp   bool `json:"in_app"`
	Email   bool `json:"email"`
	Webhook bool `json:"webhook"`
}

// decodeAs returns a decoder of the event's data into T, whose user id
// userOf picks.
func decodeAs[T any](userOf func(T) string) func(e event.Event) (string, any, error) {
	return func(e event.Event) (string, any, error) {
		var v T
		if err := e.DataAs(&v); err != nil {
			return "", nil, fmt.Errorf("decode %s data: %w", e.Type(), err)
		}
		return userOf(v), v, nil
	}
}

var funcs = template.FuncMap{
	// money formats minor units as "12.34 USD".
	"money": func(minor int64, currency string) string {
		sign := ""
		if minor < 0 {
			sign, minor = "-", -minor
		}
		return fmt.Sprintf("%s%d.%02d %s", sign, minor/100, minor%100, currency)
	},
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	// reason turns a reason code into words ("insufficient_funds" → "insufficient funds").
	"reason": func(s string) string {
		if s == "" {
			return "no reason given"
		}
		return strings.ReplaceAll(s, "_", " ")
	},
}

func kind(typ, eventType string, defaults Channels, title, body string, decode func(event.Event) (string, any, error)) Kind {
	return Kind{
		Type: typ, EventType: eventType, Defaults: defaults, decode: decode,
		title: template.Must(template.New(typ + ".title").Funcs(funcs).Option("missingkey=error").Parse(title)),
		body:  template.Must(template.New(typ + ".body").Funcs(funcs).Option("missingkey=error").Parse(body)),
	}
}

var (
	loud  = Channels{InApp: true, Email: true, Webhook: true}
	quiet = Channels{InApp: true, Email: false, Webhook: true}
)

// kinds is every notification type, in the order preferences list them.
var kinds = []Kind{
	kind("user.registered", userevents.EventRegistered, loud,
		`Welcome to cloudphone, {{.Username}}`,
		`Your account {{.Username}} is ready. Buy a plan and create your first phone.`,
		decodeAs(func(d userevents.Registered) string { return d.UserID })),
	kind("billing.order.activated", billingevents.EventOrderActivated, loud,
		`Your plan {{.PlanID}} is active`,
		`Order {{.OrderID}} is paid and your plan {{.PlanID}} is active until {{when .ExpiresAt}}.`,
		decodeAs(func(d billingevents.OrderActivatedData) string { return d.UserID })),
	kind("billing.order.failed", billingevents.EventOrderFailed, loud,
		`Your order for plan {{.PlanID}} failed`,
		`Order {{.OrderID}} for plan {{.PlanID}} failed: {{reason .Reason}}. Nothing was charged for it.`,
		decodeAs(func(d billingevents.OrderFailedData) string { return d.UserID })),
	kind("billing.balance.low", billingevents.EventBalanceLow, loud,
		`Your balance is running low`,
		`Your balance of {{money .Balance .Currency}} covers less than a day of your current usage ({{money .DailyUsage .Currency}} a day). Top it up to keep your phones running.`,
		decodeAs(func(d billingevents.BalanceLow) string { return d.UserID })),
	kind("billing.balance.exhausted", billingevents.EventBalanceExhausted, loud,
		`Your balance is used up`,
		`Your balance of {{money .Balance .Currency}} could not pay {{money .Unpaid .Currency}} of usage, so your running phones are being stopped. Top it up to start them again.`,
		decodeAs(func(d billingevents.BalanceExhausted) string { return d.UserID })),
	kind("device.running", deviceevents.EventRunning, quiet,
		`Phone {{.DeviceID}} is running`,
		`Your phone {{.DeviceID}} ({{.CPUCores}} cores, {{.MemoryMB}} MB) is running since {{when .At}}.`,
		decodeAs(func(d deviceevents.Running) string { return d.UserID })),
	kind("device.stopped", deviceevents.EventStopped, quiet,
		`Phone {{.DeviceID}} {{if eq .Reason "idle"}}was stopped for being idle{{else}}stopped{{end}}`,
		`{{if eq .Reason "idle"}}Your phone {{.DeviceID}} was stopped at {{when .At}} because it had no ADB connection and no use for your plan's idle limit. Start it again when you need it.{{else}}Your phone {{.DeviceID}} stopped at {{when .At}} ({{reason .Reason}}).{{end}}`,
		decodeAs(func(d deviceevents.Stopped) string { return d.UserID })),
	kind("device.error", deviceevents.EventError, loud,
		`Phone {{.DeviceID}} failed`,
		`Your phone {{.DeviceID}} failed at {{when .At}}: {{reason .Reason}}.`,
		decodeAs(func(d deviceevents.Failed) string { return d.UserID })),
	kind("device.deleted", deviceevents.EventDeleted, quiet,
		`Phone {{.DeviceID}} was deleted`,
		`Your phone {{.DeviceID}} was deleted at {{when .At}}; its resources are free again.`,
		decodeAs(func(d deviceevents.Deleted) string { return d.UserID })),
	kind("app.installed", deviceevents.EventAppInstalled, quiet,
		`{{.Package}} is installed on phone {{.DeviceID}}`,
		`{{.Package}} (version {{.VersionCode}}) was installed on your phone {{.DeviceID}} at {{when .At}}.`,
		decodeAs(func(d deviceevents.AppFact) string { return d.UserID })),
	kind("app.install_failed", deviceevents.EventAppInstallFailed, loud,
		`{{.Package}} could not be installed on phone {{.DeviceID}}`,
		`Installing {{.Package}} (version {{.VersionCode}}) on your phone {{.DeviceID}} failed at {{when .At}}: {{reason .Reason}}.`,
		decodeAs(func(d deviceevents.AppFact) string { return d.UserID })),
	kind("app.uninstalled", deviceevents.EventAppUninstalled, quiet,
		`{{.Package}} was removed from phone {{.DeviceID}}`,
		`{{.Package}} was uninstalled from your phone {{.DeviceID}} at {{when .At}}.`,
		decodeAs(func(d deviceevents.AppFact) string { return d.UserID })),
	kind("quota.exceeded", userevents.EventQuotaExceeded, loud,
		`You reached your quota`,
		`A request was refused: your limit {{reason .Limit}} is {{.Allowed}} and it needed {{.Requested}}. Buy a plan for more.`,
		decodeAs(func(d userevents.QuotaExceeded) string { return d.UserID })),
}

// Kinds returns every notification type.
func Kinds() []Kind { return slices.Clone(kinds) }

// EventTypes returns the CloudEvents types the context consumes.
func EventTypes() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.EventType
	}
	return out
}

// KindOf returns the kind made from events of eventType.
func KindOf(eventType string) (Kind, bool) {
	for _, k := range kinds {
		if k.EventType == eventType {
			return k, true
		}
	}
	return Kind{}, false
}

// kindByType returns the kind called typ.
func kindByType(typ string) (Kind, bool) {
	for _, k := range kinds {
		if k.Type == typ {
			return k, true
		}
	}
	return Kind{}, false
}

// Rendered is a notification as a user reads it.
type Rendered struct {
	Title string
	Body  string
}

// render fills the kind's templates with data.
func (k Kind) render(data any) (Rendered, error) {
	var t, b bytes.Buffer
	if err := k.title.Execute(&t, data); err != nil {
		return Rendered{}, fmt.Errorf("render %s title: %w", k.Type, err)
	}
	if err := k.body.Execute(&b, data); err != nil {
		return Rendered{}, fmt.Errorf("render %s body: %w", k.Type, err)
	}
	return Rendered{Title: t.String(), Body: b.String()}, nil
}

// emailHTML is the HTML body of every email. Title, Body and Username come
// from templates filled with user data, so html/template escapes them.
var emailHTML = htmltemplate.Must(htmltemplate.New("email").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family: sans-serif">
<h1 style="font-size: 1.3em">{{.Title}}</h1>
<p>Hello {{if .Username}}{{.Username}}{{else}}there{{end}},</p>
<p>{{.Body}}</p>
<p style="color: #666; font-size: 0.9em">You get this email because email is on for “{{.Type}}” notifications. Switch it off in your notification preferences.</p>
</body></html>
`))

// emailText is the plain-text body of every email.
var emailText = template.Must(template.New("email.text").Parse(`Hello {{if .Username}}{{.Username}}{{else}}there{{end}},

{{.Body}}

You get this email because email is on for "{{.Type}}" notifications. Switch it off in your notification preferences.
`))

type emailData struct {
	Type, Title, Body, Username string
}

// renderEmail returns the text and HTML bodies of an email.
func renderEmail(d emailData) (text, html string, err error) {
	var t, h bytes.Buffer
	if err := emailText.Execute(&t, d); err != nil {
		return "", "", fmt.Errorf("render %s email text: %w", d.Type, err)
	}
	if err := emailHTML.Execute(&h, d); err != nil {
		return "", "", fmt.Errorf("render %s email html: %w", d.Type, err)
	}
	return t.String(), h.String(), nil
}
