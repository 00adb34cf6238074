package redisurl

import (
	"net/url"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		mode, url string
		want      string // Mode of the result, or "error: part of the message"
		addrs     int
	}{
		{"", "redis://127.0.0.1:6379/2", Single, 1},
		{Single, "rediss://u:secret@h:6380", Single, 1},
		{Sentinel, "redis://s1:26379,?master_name=mymaster", "error: ", 0},
		{Sentinel, "redis://s1:26379/1?master_name=mymaster&addr=s2:26379&addr=s3:26379&password=pw", Sentinel, 3},
		{Sentinel, "redis://s1:26379", "error: master_name", 0},
		{Cluster, "redis://h1:7000?addr=h2:7001&addr=h3:7002", Cluster, 3},
		{Cluster, "redis://h1:7000", Cluster, 1},
		{Cluster, "redis://h1:7000/3", "error: database 0", 0},
		{Single, "redis://h1:7000?addr=h2:7001", "error: redis_mode", 0},
		{Single, "http://h:1", "error: scheme", 0},
		{Single, "redis://h:1?bogus=1", "error: unexpected option: bogus", 0},
		{"ring", "redis://h:1", "error: unknown Redis mode", 0},
	} {
		o, err := Parse(c.mode, c.url)
		if want, ok := strings.CutPrefix(c.want, "error: "); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %s: err %v, want one saying %q", c.mode, c.url, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", c.mode, c.url, err)
			continue
		}
		if Mode(o) != c.want || len(o.Addrs) != c.addrs {
			t.Errorf("%s %s: mode %s addrs %v", c.mode, c.url, Mode(o), o.Addrs)
		}
	}
	o, _ := Parse(Sentinel, "redis://su:sp@s1:26379/1?master_name=m&password=pw")
	if o.SentinelPassword != "sp" || o.Password != "pw" || o.DB != 1 || o.MasterName != "m" {
		t.Errorf("sentinel credentials: %+v", o)
	}
}

// The errors never quote the URL's password.
func FuzzParse(f *testing.F) {
	f.Add(Single, "redis://u:s3cr3t@h:1/0")
	f.Add(Sentinel, "redis://u:s3cr3t@h:1/0?master_name=m&addr=x")
	f.Add(Cluster, "rediss://:s3cr3t@h:1?addr=h2:2&bad=s3cr3t")
	f.Fuzz(func(t *testing.T, mode, raw string) {
		o, err := Parse(mode, raw)
		if err == nil {
			if o == nil || len(o.Addrs) == 0 {
				t.Fatalf("no error and no address for %q", raw)
			}
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil || u.User == nil {
			return
		}
		pw, _ := u.User.Password()
		if len(pw) < 4 || strings.Count(raw, pw) != 1 || !strings.Contains(err.Error(), pw) {
			return
		}
		// The error may spell the password's characters by chance (a
		// quoted path "0\xc0000" contains "0000"): it quotes the password
		// only if the same URL with another password does not.
		if err2, ok := parseWithOtherPassword(mode, raw, pw); !ok || err2 == nil || !strings.Contains(err2.Error(), pw) {
			t.Fatalf("the error quotes the password: %v", err)
		}
	})
}

// parseWithOtherPassword parses raw with its password pw replaced, in
// place, by a string that shares no character with it; ok is false when
// pw is not written as is in raw (escaped), and nothing was parsed.
func parseWithOtherPassword(mode, raw, pw string) (err error, ok bool) {
	other := strings.Repeat("Q", len(pw))
	if strings.Contains(pw, "Q") {
		other = strings.Repeat("Z", len(pw))
	}
	if !strings.Contains(raw, ":"+pw+"@") {
		return nil, false
	}
	_, err = Parse(mode, strings.Replace(raw, ":"+pw+"@", ":"+other+"@", 1))
	return err, true
}
