// Package upgrade drives a running master through the nginx binary-upgrade
// protocol as a checked state machine.
package upgrade
