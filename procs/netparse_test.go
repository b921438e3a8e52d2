package procs

import (
	"bytes"
	"encoding/binary"
	"maps"
	"net/netip"
	"strings"
	"testing"
)

// hostWord formats 4 network-order bytes the way the kernel prints an IPv4
// address or one word of an IPv6 address: a host-order u32 with %08X.
func hostWord(b []byte) string {
	const hex = "0123456789ABCDEF"
	v := binary.NativeEndian.Uint32(b)
	out := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		out[i] = hex[v&0xF]
		v >>= 4
	}
	return string(out)
}

// kernelAddr formats ap as /proc/net/tcp or tcp6 does.
func kernelAddr(ap netip.AddrPort) string {
	var s strings.Builder
	b := ap.Addr().AsSlice()
	for i := 0; i < len(b); i += 4 {
		s.WriteString(hostWord(b[i : i+4]))
	}
	const hex = "0123456789ABCDEF"
	p := ap.Port()
	s.WriteString(":")
	s.WriteByte(hex[p>>12&0xF])
	s.WriteByte(hex[p>>8&0xF])
	s.WriteByte(hex[p>>4&0xF])
	s.WriteByte(hex[p&0xF])
	return s.String()
}

func TestDecodeTCPAddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string // as printed on this machine's byte order
		want string // "" for an error
	}{
		{"loopback", kernelAddr(netip.MustParseAddrPort("127.0.0.1:8080")), "127.0.0.1:8080"},
		{"any", "00000000:0050", "0.0.0.0:80"},
		{"v6 loopback", kernelAddr(netip.MustParseAddrPort("[::1]:8080")), "[::1]:8080"},
		{"v6 any", "00000000000000000000000000000000:1F90", "[::]:8080"},
		{"v4-mapped", kernelAddr(netip.MustParseAddrPort("[::ffff:10.1.2.3]:443")), "[::ffff:10.1.2.3]:443"},
		{"v6 global", kernelAddr(netip.MustParseAddrPort("[2001:db8::42]:65535")), "[2001:db8::42]:65535"},
		{"no port", "0100007F", ""},
		{"short port", "0100007F:50", ""},
		{"odd address length", "0100007:0050", ""},
		{"not hex", "0100007G:0050", ""},
		{"signed word", "+100007F:0050", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeTCPAddr(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Errorf("decodeTCPAddr(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Errorf("decodeTCPAddr(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
	// On the little-endian machines baton runs on, 127.0.0.1 reads "0100007F".
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		if got, err := decodeTCPAddr("0100007F:1F90"); err != nil || got.String() != "127.0.0.1:8080" {
			t.Errorf("decodeTCPAddr(0100007F:1F90) = %v, %v", got, err)
		}
	}
}

func FuzzDecodeTCPAddr(f *testing.F) {
	f.Add("0100007F:1F90")                         // 127.0.0.1:8080 on little-endian
	f.Add("00000000000000000000000001000000:1F90") // [::1]:8080 on little-endian
	f.Add("0000000000000000FFFF00000100007F:0050") // v4-mapped
	f.Add("0100007F")                              // no port
	f.Add(":")                                     // nothing
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := decodeTCPAddr(s)
		if err != nil {
			return
		}
		// Whatever decodes is a valid address that encodes back the same
		// (up to the case of the hex digits).
		back, err := netip.ParseAddrPort(ap.String())
		if err != nil || back != ap {
			t.Fatalf("decodeTCPAddr(%q) = %v, which does not parse back: %v", s, ap, err)
		}
		if enc := kernelAddr(ap); !strings.EqualFold(enc, s) {
			t.Fatalf("decodeTCPAddr(%q) = %v, which encodes as %q", s, ap, enc)
		}
	})
}

func TestParseNetTCP(t *testing.T) {
	lo := kernelAddr(netip.MustParseAddrPort("127.0.0.1:8080"))
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n" +
		"   0: " + lo + " 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41236 1 0000000091cd0d09 100 0 0 10 0                      \n" +
		"   1: " + lo + " 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 41300 1 0000000091cd0d09 20 4 30 10 -1                     \n" +
		"   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41237 1 0000000091cd0d09 100 0 0 10 0                      \n"
	got := make(map[uint64]netSocket)
	if err := parseNetTCP(strings.NewReader(table), "tcp", nil, got); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]netSocket{
		41236: {network: "tcp", addr: "127.0.0.1:8080"},
		41237: {network: "tcp", addr: "0.0.0.0:80"},
	}
	if !maps.Equal(got, want) {
		t.Errorf("parseNetTCP = %v, want %v (the established socket 41300 is no listener)", got, want)
	}
	for _, bad := range []string{
		"header\n   0: " + lo + " 00000000:0000 0A\n",                                                                 // short line
		"header\n   0: " + lo + " 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 x 1\n",       // inode
		"header\n   0: 0100007:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41236 1\n", // address
	} {
		if err := parseNetTCP(strings.NewReader(bad), "tcp", nil, map[uint64]netSocket{}); err == nil {
			t.Errorf("parseNetTCP(%q) succeeded", bad)
		}
	}
}

func TestParseNetUnix(t *testing.T) {
	table := "Num       RefCount Protocol Flags    Type St Inode Path\n" +
		"0000000066d631b0: 00000003 00000000 00000000 0001 03  1582\n" + // connected, unnamed
		"00000000b3a2a1c0: 00000002 00000000 00010000 0001 01 41240 /run/app.sock\n" +
		"00000000b3a2a1c1: 00000002 00000000 00010000 0001 01 41241 @baton-test\n" +
		"00000000b3a2a1c2: 00000002 00000000 00010000 0005 01 41242 /run/with space.sock\n" + // seqpacket
		"00000000b3a2a1c3: 00000002 00000000 00010000 0001 01 41243 /run/new\n" + // path with a newline...
		"line.sock\n" + // ...spills over
		"00000000b3a2a1c4: 00000003 00000000 00000000 0001 03 41244 /run/app.sock\n" // accepted connection
	got := make(map[uint64]netSocket)
	if err := parseNetUnix(strings.NewReader(table), nil, got); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]netSocket{
		41240: {network: "unix", addr: "/run/app.sock"},
		41241: {network: "unix", addr: "@baton-test"},
		41242: {network: "unix", addr: "/run/with space.sock"},
		41243: {network: "unix", addr: "/run/new"},
	}
	if !maps.Equal(got, want) {
		t.Errorf("parseNetUnix =\n%v, want\n%v", got, want)
	}
	for _, bad := range []string{
		"header\n0000000066d631b0: 00000002 00000000 0001000X 0001 01 41240 /x\n", // flags
		"header\n0000000066d631b0: 00000002 00000000 00010000 0001 01 4124x /x\n", // inode
	} {
		if err := parseNetUnix(strings.NewReader(bad), nil, map[uint64]netSocket{}); err == nil {
			t.Errorf("parseNetUnix(%q) succeeded", bad)
		}
	}
}

func FuzzParseNetUnix(f *testing.F) {
	f.Add([]byte("Num       RefCount Protocol Flags    Type St Inode Path\n00000000b3a2a1c0: 00000002 00000000 00010000 0001 01 41240 /run/app.sock\n"))
	f.Add([]byte("h\n0000000066d631b0: 00000003 00000000 00000000 0001 03  1582\n")) // unnamed
	f.Add([]byte("h\n0: 1 2 10000 1 1 7 @a b\nspill\n"))                             // abstract with space, spilled line
	f.Fuzz(func(t *testing.T, b []byte) {
		got := make(map[uint64]netSocket)
		if err := parseNetUnix(bytes.NewReader(b), nil, got); err != nil {
			return
		}
		for inode, s := range got {
			if s.network != "unix" || strings.Contains(s.addr, "\n") {
				t.Fatalf("parseNetUnix(%q): %d = %+v", b, inode, s)
			}
		}
	})
}

func TestSocketInode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"socket:[41236]", 41236, true},
		{"pipe:[41236]", 0, false},
		{"anon_inode:[eventfd]", 0, false},
		{"/dev/null", 0, false},
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := socketInode(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("socketInode(%q) = %d, %v", tc.in, got, ok)
			}
		})
	}
}
