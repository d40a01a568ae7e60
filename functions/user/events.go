package user

// Sources of the quota events.
const (
	SourceQuotaGrants   = "/cloudphone/user/user-quota-grants"
	SourceQuotaInternal = "/cloudphone/user/user-quota-internal"
)

// SourceRegister is the source of the events the auth-register function emits.
const SourceRegister = "/cloudphone/user/auth-register"
