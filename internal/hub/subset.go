package hub

// subSet is a client's subscriptions, in subscription order. A slice, not
// a map: connections have a few channels each, and even a one-entry map
// costs about 250 bytes of heap, which at tens of thousands of idle
// connections was a tenth of the server's memory per connection. Lookups
// are linear; max_channels_per_connection bounds the length.
type subSet []subEntry

type subEntry struct {
	name string
	sub  *subscription
}

// get returns the subscription to name, or nil.
func (s subSet) get(name string) *subscription {
	for i := range s {
		if s[i].name == name {
			return s[i].sub
		}
	}
	return nil
}

// add records a subscription to a channel not in the set.
func (s *subSet) add(name string, sub *subscription) {
	*s = append(*s, subEntry{name, sub})
}

// remove deletes the subscription to name and returns it (nil when there
// was none). The order of the others is kept.
func (s *subSet) remove(name string) *subscription {
	list := *s
	for i := range list {
		if list[i].name == name {
			sub := list[i].sub
			last := len(list) - 1
			copy(list[i:], list[i+1:])
			list[last] = subEntry{} // let the removed entry's memory go
			*s = list[:last]
			return sub
		}
	}
	return nil
}
