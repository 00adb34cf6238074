package config

import (
	"math"
	"strings"
)

// suggest returns the known key closest to an unknown one, or "". It knows
// the soketi and Reverb spellings, so that a migrated config gets a useful
// hint, and otherwise allows a couple of typos.
func suggest(unknown string, known []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	u := norm(unknown)
	switch u {
	case "appid":
		u = "id"
	case "maxclienteventspersecond", "maxclienteventspersec":
		u = "clienteventspersecond"
	case "maxpresencemembersperchannel":
		u = "maxpresencemembers"
	case "maxpresencemembersizeinkb":
		u = "maxpresencemembersizekb"
	case "maxeventpayloadinkb":
		u = "maxeventpayloadkb"
	case "maxconns":
		u = "maxconnections"
	case "pinginterval":
		u = "activitytimeout"
	}
	best, bestDist := "", 3
	for _, k := range known {
		if norm(k) == u {
			return k
		}
		if d := editDistance(unknown, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
