package devices

import (
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/shared/function"
	"net/http"
)

// API documents the routes for the API reference.
var API = []function.Operation{
	{Route: RouteCreate, Summary: "Rent a phone",
		Doc: "Answers 202 with the phone in state creating; it is running when device-runtime has started its container " +
			"(poll GET /api/v1/devices/{id}). Needs a free device in your quota (403 quota_exceeded otherwise).",
		Request: device.CreateRequest{}, Status: http.StatusAccepted, Response: device.Device{}},
	{Route: RouteList, Summary: "Your phones", Response: List{}},
	{Route: RouteGet, Summary: "One of your phones",
		Doc:      "state is creating, starting, running, stopping, stopped, restarting, error, deleting or deleted.",
		Response: device.Device{}},
	{Route: RouteDelete, Summary: "Give a phone back", Doc: "Its container and data go; its quota is released.",
		Status: http.StatusAccepted, Response: device.Device{}},
	{Route: RouteStart, Summary: "Start a stopped phone", Status: http.StatusAccepted, Response: device.Device{}},
	{Route: RouteStop, Summary: "Stop a running phone", Doc: "A stopped phone is not charged; its data is kept.",
		Status: http.StatusAccepted, Response: device.Device{}},
	{Route: RouteRestart, Summary: "Restart a running phone", Status: http.StatusAccepted, Response: device.Device{}},
	{Route: RouteConnection, Summary: "How to reach a running phone over ADB",
		Doc:      "Answers the gateway's WebSocket URL with a one-time ticket valid for a minute: `cpctl adb` or any WebSocket client that speaks ADB's wire protocol.",
		Response: device.Connection{}},
	{Route: RouteApps, Summary: "The apps on a phone",
		Doc:      "state is installing, installed, failed (with reason) or uninstalling.",
		Response: device.InstallationList{}},
	{Route: RouteInstall, Summary: "Install one of your apps on a running phone",
		Doc: "Answers 202 with the installation, installing until the phone reports installed or failed (reason digest_mismatch, " +
			"download_failed, not_listed, ... or the package manager's code). Installing the same version again changes nothing.",
		Request: device.InstallRequest{}, Status: http.StatusAccepted, Response: device.Installation{}},
	{Route: RouteUninstall, Summary: "Uninstall an app from a running phone", Status: http.StatusAccepted, Response: device.Installation{}},
}
