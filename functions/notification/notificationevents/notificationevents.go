// Package notificationevents is the notification context's event contract.
// It imports nothing of the notification context.
package notificationevents

// EventDeliveryRequested is notification-delivery's scheduled tick (data
// events.Tick): drain what is due now.
const EventDeliveryRequested = "cloudphone.notification.delivery.requested"
