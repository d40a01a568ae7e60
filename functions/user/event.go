package user

import "time"

// EventRegistered announces a new account; its subject is the user id.
const EventRegistered = "cloudphone.user.registered"

// SourceRegister is the source of the events the auth-register function emits.
const SourceRegister = "/cloudphone/user/auth-register"

// Registered is the data of EventRegistered (schema version 1).
type Registered struct {
	SchemaVersion int       `json:"schema_version"`
	UserID        string    `json:"user_id"`
	Username      string    `json:"username"`
	Email         string    `json:"email"`
	RegisteredAt  time.Time `json:"registered_at"`
}
