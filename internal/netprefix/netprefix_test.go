package netprefix_test

import (
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/netprefix"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"", " , "}, ""},
		{[]string{" 10.0.0.0/8 , ::1", ""}, "10.0.0.0/8 ::1/128"},
		{[]string{" 10.1.2.3/8 ,", "::ffff:172.16.0.0/108", "2001:db8::1"}, "10.0.0.0/8 172.16.0.0/12 2001:db8::1/128"},
		{[]string{"127.0.0.0/8,10.1.0.0/16", "fd00:1::/32", "192.168.1.5"}, "127.0.0.0/8 10.1.0.0/16 fd00:1::/32 192.168.1.5/32"},
		{[]string{"::ffff:192.0.2.7", "fe80::1%eth0"}, "192.0.2.7/32 fe80::1/128"},
	} {
		got, err := netprefix.Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, " ") != c.want {
			t.Errorf("Parse(%q) = %v, want %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "intranet", "proxy.example.com", "10.0.0.0/8/1", "::ffff:10.0.0.0/90", "fe80::1%eth0/64"} {
		got, err := netprefix.Parse([]string{"10.0.0.0/8," + bad})
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, got)
		} else if !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("Parse(%q): error %q does not quote the entry", bad, err)
		}
	}
}
