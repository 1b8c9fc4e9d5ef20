// Package appliance is the technician's flow, one button and three lights:
// power on, self-test, READY; a short press captures and analyses a field;
// a long press closes the sample with its verdict. It drives the devices
// (package device) and hands frames to the screening pipeline through the
// Screener interface; everything it shows about a result has been committed
// by the Screener first.
//
// It also tells systemd how it is (READY, STATUS, WATCHDOG) through a
// Notifier, and keeps retrying the self-test checks that can recover (a
// camera plugged in later, space freed on the disk, a model reinstalled).
package appliance
