// Package master is baton's own master process: the other side of the upgrade
// protocol, for programs that cannot upgrade themselves the nginx way.
package master
