package hub

import "testing"

func TestOriginAllowed(t *testing.T) {
	cases := []struct {
		allowed []string
		origin  string
		want    bool
	}{
		{nil, "https://x.com", true},
		{[]string{"*"}, "https://x.com", true},
		{[]string{"https://a.com"}, "", true},
		{[]string{"https://a.com"}, "https://a.com", true},
		{[]string{"https://a.com"}, "HTTPS://A.COM/", true},
		{[]string{"https://a.com"}, "http://a.com", false},
		{[]string{"https://a.com"}, "https://a.com:8443", false},
		{[]string{"a.com"}, "http://a.com:8080", true},
		{[]string{"a.com"}, "https://b.a.com", false},
		{[]string{"*.a.com"}, "https://b.a.com", true},
		{[]string{"*.a.com"}, "https://c.b.a.com", true},
		{[]string{"*.a.com"}, "https://a.com", false},
		{[]string{"*.a.com"}, "https://evila.com", false},
		{[]string{"a.com:8080"}, "http://a.com:8080", true},
		{[]string{"a.com:8080"}, "http://a.com:9090", false},
		{[]string{"a.com"}, "null", false},
	}
	for _, tc := range cases {
		if got := originAllowed(tc.allowed, tc.origin); got != tc.want {
			t.Errorf("originAllowed(%q, %q) = %v, want %v", tc.allowed, tc.origin, got, tc.want)
		}
	}
}
