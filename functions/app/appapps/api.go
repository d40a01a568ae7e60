package appapps

import (
	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteUpload, Summary: "Upload an APK",
		Doc: "A multipart form with the APK in the file field (application/vnd.android.package-archive), at most 200 MB. " +
			"The manifest is read from the APK; the same package and version code again is 409.",
		RequestType: "multipart/form-data",
		Request: function.Schema{"type": "object", "required": []string{FileField}, "properties": map[string]any{
			FileField: map[string]any{"type": "string", "contentMediaType": "application/vnd.android.package-archive"}}},
		Status: http.StatusCreated, Response: One{}},
	{Route: RouteList, Summary: "Your apps, newest first",
		Query:    map[string]string{"limit": "page size, 1 to 100", "cursor": "next_cursor of the previous page"},
		Response: app.Page{}},
	{Route: RouteGet, Summary: "One of your apps", Response: One{}},
	{Route: RouteDelete, Summary: "Delete an app", Doc: "The APK's bytes go when no app refers to them.", Status: http.StatusNoContent},
}
