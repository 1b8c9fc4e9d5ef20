// Package device owns the appliance's hardware behind small interfaces: the
// camera that captures a field, the capture button (short and long press),
// the three status lights and the small text display.
//
// Real drivers live in sub-packages and are each handed their periph.io pin
// or bus (or, for the camera, a device index): none opens hardware by name,
// so every one is tested with periph's fakes. device/sim draws the lights
// and display on a terminal and turns keys and signals into presses.
//
// The package knows nothing of vision, models or storage.
package device
