// Package load is an HTTP/1.1 load generator that counts every failed
// request, built to prove that an upgrade drops none.
//
// # Modes
//
// [KeepAlive] keeps one connection per worker and reuses it; [NewConn] dials a
// connection per request and closes it ("Connection: close"). Every response is
// checked (status and body) and the body's first line is tallied as the tag of
// the generation that served it.
//
// # The keep-alive race
//
// A server that retires a generation closes its idle keep-alive connections.
// A request written on such a connection just as the server closes it fails
// with EOF or a reset before a single byte of the response arrives. RFC 9112
// §9.3.1 allows a client to retry such an idempotent request on a new
// connection, and browsers and Go's net/http do. This package does the same,
// once, but counts these races in [Result.Races] apart from real failures
// (refused, reset mid-response, wrong answer, timeout), because a non-retrying
// client such as wrk would see each of them as an error: nginx's own manual
// procedure loses one request per open connection per retired generation that
// way. A failure on a fresh connection, or after response bytes arrived, is
// never a race.
//
// The client is written on net.Conn rather than net/http so that a retry is
// visible and counted instead of hidden inside the transport.
package load
