package notification

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
)

// Kind is one type of notification: the event it comes from, how its user
// is found in the event, how it reads (a title and a body in plain text,
// everywhere; the email's HTML escapes them, so whatever a user chose — a
// name, a reason — stays text there), and which channels are on until the
// user says otherwise.
//
// Titles and bodies are Go functions rather than templates: executing a
// text/template looks methods up by name at run time, which makes the linker
// keep every exported method of every type in the binary (the Redis client's
// hundreds of commands among them), and parsing them at init delayed every
// start of the context's functions.
type Kind struct {
	// Type is the name users see and choose preferences and webhooks by:
	// the event type without "cloudphone." (and, for quota.exceeded,
	// without its context).
	Type string
	// EventType is the CloudEvents type it is made from.
	EventType string
	// Defaults are the channels on when the user has no preference.
	Defaults Channels

	// decode reads e's data, the user it is for and what it reads as.
	decode func(e event.Event) (userID string, data any, r Rendered, err error)
}

// Channels says which ways of telling a user are on.
type Channels struct {
	InApp   bool `json:"in_app"`
	Email   bool `json:"email"`
	Webhook bool `json:"webhook"`
}

// kind makes the Kind of events whose data is a T, whose user id userOf
// picks, and which read as title and body say.
func kind[T any](typ, eventType string, defaults Channels, title, body func(T) string, userOf func(T) string) Kind {
	return Kind{
		Type: typ, EventType: eventType, Defaults: defaults,
		decode: func(e event.Event) (string, any, Rendered, error) {
			var v T
			if err := e.DataAs(&v); err != nil {
				return "", nil, Rendered{}, fmt.Errorf("decode %s data: %w", e.Type(), err)
			}
			return userOf(v), v, Rendered{Title: title(v), Body: body(v)}, nil
		},
	}
}

// money formats minor units as "12.34 USD".
func money(minor int64, currency string) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, minor/100, minor%100, currency)
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// reason turns a reason code into words ("insufficient_funds" → "insufficient funds").
func reason(s string) string {
	if s == "" {
		return "no reason given"
	}
	return strings.ReplaceAll(s, "_", " ")
}

var (
	loud  = Channels{InApp: true, Email: true, Webhook: true}
	quiet = Channels{InApp: true, Email: false, Webhook: true}
)

// kinds is every notification type, in the order preferences list them.
var kinds = []Kind{
	kind("user.registered", userevents.EventRegistered, loud,
		func(d userevents.Registered) string { return "Welcome to cloudphone, " + d.Username },
		func(d userevents.Registered) string {
			return "Your account " + d.Username + " is ready. Buy a plan and create your first phone."
		},
		func(d userevents.Registered) string { return d.UserID }),
	kind("billing.order.activated", billingevents.EventOrderActivated, loud,
		func(d billingevents.OrderActivatedData) string { return "Your plan " + d.PlanID + " is active" },
		func(d billingevents.OrderActivatedData) string {
			return fmt.Sprintf("Order %s is paid and your plan %s is active until %s.", d.OrderID, d.PlanID, when(d.ExpiresAt))
		},
		func(d billingevents.OrderActivatedData) string { return d.UserID }),
	kind("billing.order.failed", billingevents.EventOrderFailed, loud,
		func(d billingevents.OrderFailedData) string { return "Your order for plan " + d.PlanID + " failed" },
		func(d billingevents.OrderFailedData) string {
			return fmt.Sprintf("Order %s for plan %s failed: %s. Nothing was charged for it.", d.OrderID, d.PlanID, reason(d.Reason))
		},
		func(d billingevents.OrderFailedData) string { return d.UserID }),
	kind("billing.balance.low", billingevents.EventBalanceLow, loud,
		func(billingevents.BalanceLow) string { return "Your balance is running low" },
		func(d billingevents.BalanceLow) string {
			return fmt.Sprintf("Your balance of %s covers less than a day of your current usage (%s a day). Top it up to keep your phones running.",
				money(d.Balance, d.Currency), money(d.DailyUsage, d.Currency))
		},
		func(d billingevents.BalanceLow) string { return d.UserID }),
	kind("billing.balance.exhausted", billingevents.EventBalanceExhausted, loud,
		func(billingevents.BalanceExhausted) string { return "Your balance is used up" },
		func(d billingevents.BalanceExhausted) string {
			return fmt.Sprintf("Your balance of %s could not pay %s of usage, so your running phones are being stopped. Top it up to start them again.",
				money(d.Balance, d.Currency), money(d.Unpaid, d.Currency))
		},
		func(d billingevents.BalanceExhausted) string { return d.UserID }),
	kind("device.running", deviceevents.EventRunning, quiet,
		func(d deviceevents.Running) string { return "Phone " + d.DeviceID + " is running" },
		func(d deviceevents.Running) string {
			return fmt.Sprintf("Your phone %s (%d cores, %d MB) is running since %s.", d.DeviceID, d.CPUCores, d.MemoryMB, when(d.At))
		},
		func(d deviceevents.Running) string { return d.UserID }),
	kind("device.stopped", deviceevents.EventStopped, quiet,
		func(d deviceevents.Stopped) string {
			if d.Reason == "idle" {
				return "Phone " + d.DeviceID + " was stopped for being idle"
			}
			return "Phone " + d.DeviceID + " stopped"
		},
		func(d deviceevents.Stopped) string {
			if d.Reason == "idle" {
				return fmt.Sprintf("Your phone %s was stopped at %s because it had no ADB connection and no use for your plan's idle limit. Start it again when you need it.", d.DeviceID, when(d.At))
			}
			return fmt.Sprintf("Your phone %s stopped at %s (%s).", d.DeviceID, when(d.At), reason(d.Reason))
		},
		func(d deviceevents.Stopped) string { return d.UserID }),
	kind("device.error", deviceevents.EventError, loud,
		func(d deviceevents.Failed) string { return "Phone " + d.DeviceID + " failed" },
		func(d deviceevents.Failed) string {
			return fmt.Sprintf("Your phone %s failed at %s: %s.", d.DeviceID, when(d.At), reason(d.Reason))
		},
		func(d deviceevents.Failed) string { return d.UserID }),
	kind("device.deleted", deviceevents.EventDeleted, quiet,
		func(d deviceevents.Deleted) string { return "Phone " + d.DeviceID + " was deleted" },
		func(d deviceevents.Deleted) string {
			return fmt.Sprintf("Your phone %s was deleted at %s; its resources are free again.", d.DeviceID, when(d.At))
		},
		func(d deviceevents.Deleted) string { return d.UserID }),
	kind("app.installed", deviceevents.EventAppInstalled, quiet,
		func(d deviceevents.AppFact) string { return d.Package + " is installed on phone " + d.DeviceID },
		func(d deviceevents.AppFact) string {
			return fmt.Sprintf("%s (version %d) was installed on your phone %s at %s.", d.Package, d.VersionCode, d.DeviceID, when(d.At))
		},
		func(d deviceevents.AppFact) string { return d.UserID }),
	kind("app.install_failed", deviceevents.EventAppInstallFailed, loud,
		func(d deviceevents.AppFact) string {
			return d.Package + " could not be installed on phone " + d.DeviceID
		},
		func(d deviceevents.AppFact) string {
			return fmt.Sprintf("Installing %s (version %d) on your phone %s failed at %s: %s.", d.Package, d.VersionCode, d.DeviceID, when(d.At), reason(d.Reason))
		},
		func(d deviceevents.AppFact) string { return d.UserID }),
	kind("app.uninstalled", deviceevents.EventAppUninstalled, quiet,
		func(d deviceevents.AppFact) string { return d.Package + " was removed from phone " + d.DeviceID },
		func(d deviceevents.AppFact) string {
			return fmt.Sprintf("%s was uninstalled from your phone %s at %s.", d.Package, d.DeviceID, when(d.At))
		},
		func(d deviceevents.AppFact) string { return d.UserID }),
	kind("quota.exceeded", userevents.EventQuotaExceeded, loud,
		func(userevents.QuotaExceeded) string { return "You reached your quota" },
		func(d userevents.QuotaExceeded) string {
			return fmt.Sprintf("A request was refused: your limit %s is %d and it needed %d. Buy a plan for more.", reason(d.Limit), d.Allowed, d.Requested)
		},
		func(d userevents.QuotaExceeded) string { return d.UserID }),
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

// emailHTML is the HTML body of every email, with %s for the title (twice),
// the greeting's name, the body and the type, each escaped by escapeHTML:
// they come from user data.
const emailHTML = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>%[1]s</title></head>
<body style="font-family: sans-serif">
<h1 style="font-size: 1.3em">%[1]s</h1>
<p>Hello %[2]s,</p>
<p>%[3]s</p>
<p style="color: #666; font-size: 0.9em">You get this email because email is on for “%[4]s” notifications. Switch it off in your notification preferences.</p>
</body></html>
`

// emailText is the plain-text body of every email: the greeting's name, the
// body and the type.
const emailText = `Hello %[1]s,

%[2]s

You get this email because email is on for "%[3]s" notifications. Switch it off in your notification preferences.
`

// escapeHTML escapes s for HTML text, as html/template does: the five
// characters with a meaning in HTML, '+' and NUL.
var escapeHTML = strings.NewReplacer("\x00", "\uFFFD", `"`, "&#34;", "&", "&amp;", "'", "&#39;", "+", "&#43;", "<", "&lt;", ">", "&gt;").Replace

type emailData struct {
	Type, Title, Body, Username string
}

// renderEmail returns the text and HTML bodies of an email.
func renderEmail(d emailData) (text, html string) {
	name := d.Username
	if name == "" {
		name = "there"
	}
	text = fmt.Sprintf(emailText, name, d.Body, d.Type)
	html = fmt.Sprintf(emailHTML, escapeHTML(d.Title), escapeHTML(name), escapeHTML(d.Body), escapeHTML(d.Type))
	return text, html
}
