package device

// Sources of the events the context writes.
const (
	SourceDevices     = "/cloudphone/device/devices"
	SourceReports     = "/cloudphone/device/device-reports"
	SourceBalanceStop = "/cloudphone/device/device-balance-stop"
	SourceQuotaStop   = "/cloudphone/device/device-quota-stop"
	SourceADBGateway  = "/cloudphone/device/device-adb-gateway"
	SourceIdleStop    = "/cloudphone/device/device-idle-stop"
)
