package settings

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type sample struct {
	Port    int           `yaml:"port"`
	Wait    time.Duration `yaml:"wait"`
	Names   []string      `yaml:"names"`
	Level   string        `yaml:"level"`
	On      bool          `yaml:"on"`
	Ignored int           `yaml:"-"`
}

func sampleSettings() []Setting {
	return []Setting{
		{Key: "port", Default: 6001, Rule: Rule{Expect: "a port number 1-65535", Min: 1, Max: 65535}, Help: "listen on this `port`"},
		{Key: "wait", Default: 2 * time.Second, Rule: Rule{Expect: "a duration between 1s and 1m", Min: int64(time.Second), Max: int64(time.Minute)}, Help: "wait this `duration`"},
		{Key: "names", Default: []string{"a"}, Help: "`names`"},
		{Key: "level", Default: "info", Rule: Rule{Expect: "one of info, warn", OneOf: []string{"info", "warn"}}, Help: "`level`"},
		{Key: "on", Help: "turn it on", Env: "SAMPLE_SWITCH"},
	}
}

func TestBindChecksEveryFieldHasOneEntry(t *testing.T) {
	if _, err := Bind[sample](sampleSettings()); err != nil {
		t.Fatal(err)
	}
	list := sampleSettings()
	tests := []struct {
		name string
		list []Setting
		want string
	}{
		{"missing", list[:4], "on: field settings.sample.On has no setting"},
		{"extra", append(sampleSettings(), Setting{Key: "nope"}), "nope: no field"},
		{"twice", append(sampleSettings(), Setting{Key: "port"}), "port: listed twice"},
		{"default type", append([]Setting{{Key: "port", Default: int64(1)}}, list[1:]...), "port: default"},
		{"order", append([]Setting{list[1], list[0]}, list[2:]...), "wait: listed before port"},
	}
	for _, tt := range tests {
		_, err := Bind[sample](tt.list)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestDefaultsAreSetAndCopied(t *testing.T) {
	tb := MustBind[sample](sampleSettings())
	var a, b sample
	tb.SetDefaults(&a)
	tb.SetDefaults(&b)
	want := sample{Port: 6001, Wait: 2 * time.Second, Names: []string{"a"}, Level: "info"}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("defaults %+v, want %+v", a, want)
	}
	a.Names[0] = "changed"
	if b.Names[0] != "a" {
		t.Error("a default list is shared between values")
	}
}

func TestNamesAreDerived(t *testing.T) {
	tb := MustBind[sample](sampleSettings())
	s, _ := tb.Lookup("port")
	if s.EnvVar("HERALD_") != "HERALD_PORT" || s.FlagName() != "port" {
		t.Errorf("port: env %s, flag %s", s.EnvVar("HERALD_"), s.FlagName())
	}
	if s, _ := tb.Lookup("on"); s.EnvVar("HERALD_") != "SAMPLE_SWITCH" {
		t.Errorf("an Env override is not used: %s", s.EnvVar("HERALD_"))
	}
	if FlagName("max_request_body_kb") != "max-request-body-kb" {
		t.Error(FlagName("max_request_body_kb"))
	}
	s, _ = tb.Lookup("wait")
	if u := s.Usage(DurationType, "HERALD_WAIT"); u != "wait this `duration`"+DurationHint+" (env HERALD_WAIT)" {
		t.Errorf("usage %q", u)
	}
}

func TestRuleCheck(t *testing.T) {
	tb := MustBind[sample](sampleSettings())
	v := sample{Port: 0, Wait: time.Hour, Names: nil, Level: "loud"}
	var got []string
	tb.Problems(reflect.ValueOf(v), func(key, msg string) { got = append(got, key+": "+msg) })
	want := []string{
		"port: must be a port number 1-65535, got 0",
		"wait: must be a duration between 1s and 1m, got 1h0m0s",
		`level: must be one of info, warn, got "loud"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems\n%q\nwant\n%q", got, want)
	}
	r := Rule{Expect: "0 or 1-10", Min: 1, Max: 10, Zero: true, MinusOne: true, ZeroHint: " (hint)"}
	for n, ok := range map[int]bool{-2: false, -1: true, 0: true, 5: true, 11: false} {
		if msg := r.Check(reflect.ValueOf(n)); (msg == "") != ok {
			t.Errorf("%d: %q", n, msg)
		}
	}
	r.Zero = false
	if msg := r.Check(reflect.ValueOf(0)); msg != "must be 0 or 1-10, got 0 (hint)" {
		t.Errorf("zero hint: %q", msg)
	}
}

func TestSetScalar(t *testing.T) {
	var v sample
	rv := reflect.ValueOf(&v).Elem()
	for _, c := range []struct {
		field, raw string
		ok         bool
	}{
		{"Port", " 7000 ", true}, {"Port", "7k", false},
		{"Wait", "90", true}, {"Wait", "1m30s", true}, {"Wait", "soon", false}, {"Wait", "99999999999999", false},
		{"Names", " a, ,b ", true}, {"Level", "x", true},
		{"On", "yes", true}, {"On", "off", true}, {"On", "maybe", false},
	} {
		err := SetScalar(rv.FieldByName(c.field), c.raw)
		if (err == nil) != c.ok {
			t.Errorf("%s=%q: err %v", c.field, c.raw, err)
		}
	}
	if err := SetScalar(rv.FieldByName("Wait"), "90"); err != nil || v.Wait != 90*time.Second {
		t.Errorf("a bare number is not seconds: %v %v", v.Wait, err)
	}
	if err := SetScalar(rv.FieldByName("Names"), " a, ,b "); err != nil || !reflect.DeepEqual(v.Names, []string{"a", "b"}) {
		t.Errorf("list: %q", v.Names)
	}
	if err := SetScalar(rv.FieldByName("Names"), ""); err != nil || v.Names == nil || len(v.Names) != 0 {
		t.Errorf("empty list: %#v", v.Names)
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{1800 * time.Second, "30m"}, {2 * time.Hour, "2h"}, {0 * time.Second, "0s"}, {250 * time.Millisecond, "250ms"},
		{10 * time.Second, "10s"}, {[]string{}, ""}, {[]string{"a", "b"}, "a,b"}, {6001, "6001"}, {false, "false"},
	} {
		if got := FormatValue(reflect.ValueOf(c.v)); got != c.want {
			t.Errorf("%v: %q, want %q", c.v, got, c.want)
		}
	}
}
