package app

// Sources of the app context's events.
const (
	SourceApps = "/cloudphone/app/app-apps"
)
