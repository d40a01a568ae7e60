package user

import (
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudphone/cloudphone/shared/validate"
)

// Roles.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// Account statuses.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// userPermissions are what every signed-up user may do.
var userPermissions = []string{
	"device:create", "device:read", "device:operate", "device:delete",
	"billing:order", "billing:read",
	"app:upload", "app:read", "app:delete",
	"notification:read",
}

// adminPermissions are added by the admin role.
var adminPermissions = []string{
	"admin:users", "admin:plans", "admin:credit", "admin:nodes", "admin:ip-bans",
}

// Permissions returns the sorted, de-duplicated permissions that roles grant.
// Unknown roles grant nothing.
func Permissions(roles []string) []string {
	var perms []string
	for _, r := range roles {
		switch r {
		case RoleUser:
			perms = append(perms, userPermissions...)
		case RoleAdmin:
			perms = append(perms, userPermissions...)
			perms = append(perms, adminPermissions...)
		}
	}
	slices.Sort(perms)
	return slices.Compact(perms)
}

// User is an account as the context stores it (without its password hash).
type User struct {
	ID           string
	Username     string
	Email        string
	Roles        []string
	Status       string
	FailedLogins int
	LockedUntil  *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Validation limits.
const (
	UsernameMin = 3
	UsernameMax = 32
	EmailMax    = 254
	PasswordMin = 10
	PasswordMax = 128
)

// reservedUsernames cannot be registered: "admin" is created by EnsureAdmin,
// and the others would let a user pass for the operator.
var reservedUsernames = []string{"admin", "administrator", "root", "system", "cloudphone", "support", "security"}

// isUsername reports whether s is one or more of a-z, 0-9, '_', '.' and '-'.
func isUsername(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return s != ""
}

// normalizeUsername returns username lower-cased, as it is stored and compared.
func normalizeUsername(username string) string { return strings.ToLower(username) }

// normalizeEmail returns email lower-cased, as it is stored and compared.
func normalizeEmail(email string) string { return strings.ToLower(email) }

func checkUsername(p *validate.Problems, username string) {
	n := utf8.RuneCountInString(username)
	switch {
	case !validate.NoControlChars(username):
		p.Add("username", "must not contain control characters")
	case n < UsernameMin || n > UsernameMax:
		p.Add("username", "must be 3 to 32 characters")
	case !isUsername(normalizeUsername(username)):
		p.Add("username", "may hold only letters a-z, digits, '_', '.' and '-'")
	case slices.Contains(reservedUsernames, normalizeUsername(username)):
		p.Add("username", "is reserved")
	}
}

func checkEmail(p *validate.Problems, email string) {
	switch {
	case email == "":
		p.Add("email", "is required")
	case !validate.NoControlChars(email):
		p.Add("email", "must not contain control characters")
	case len(email) > EmailMax:
		p.Add("email", "must be at most 254 characters")
	case !emailShape(email):
		p.Add("email", "must be an address like name@example.com")
	}
}

// emailShape accepts a bare address (no display name, no comments, no
// spaces) with a local part of at most 64 bytes and a dotted domain.
func emailShape(email string) bool {
	if strings.ContainsAny(email, " <>\"(),;:\\[]") {
		return false
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return false
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || len(local) > 64 || strings.Contains(domain, "@") {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
	}
	return true
}

func checkPasswordRules(p *validate.Problems, password string) {
	n := utf8.RuneCountInString(password)
	switch {
	case !validate.NoControlChars(password):
		p.Add("password", "must not contain control characters")
	case n < PasswordMin || n > PasswordMax:
		p.Add("password", "must be 10 to 128 characters")
	}
}
