package hub

// Observers calls every non-nil Observer in turn, so that metrics,
// webhooks and the dashboard can all watch one hub. It returns nil when
// there is none and the Observer itself when there is one.
func Observers(list ...Observer) Observer {
	var out multiObserver
	for _, o := range list {
		if o != nil {
			out = append(out, o)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

type multiObserver []Observer

func (m multiObserver) ConnectionOpened(appID string) {
	for _, o := range m {
		o.ConnectionOpened(appID)
	}
}

func (m multiObserver) ConnectionClosed(appID string) {
	for _, o := range m {
		o.ConnectionClosed(appID)
	}
}

func (m multiObserver) ChannelOccupied(appID, channel string) {
	for _, o := range m {
		o.ChannelOccupied(appID, channel)
	}
}

func (m multiObserver) ChannelVacated(appID, channel string) {
	for _, o := range m {
		o.ChannelVacated(appID, channel)
	}
}

func (m multiObserver) MemberAdded(appID, channel, userID string) {
	for _, o := range m {
		o.MemberAdded(appID, channel, userID)
	}
}

func (m multiObserver) MemberRemoved(appID, channel, userID string) {
	for _, o := range m {
		o.MemberRemoved(appID, channel, userID)
	}
}

func (m multiObserver) ClientEvent(appID, channel, event string, data []byte, socketID, userID string) {
	for _, o := range m {
		o.ClientEvent(appID, channel, event, data, socketID, userID)
	}
}

func (m multiObserver) CacheMiss(appID, channel string) {
	for _, o := range m {
		o.CacheMiss(appID, channel)
	}
}

func (m multiObserver) SubscriptionCount(appID, channel string, count int) {
	for _, o := range m {
		o.SubscriptionCount(appID, channel, count)
	}
}

func (m multiObserver) Published(appID, channel, event string, deliveries int) {
	for _, o := range m {
		o.Published(appID, channel, event, deliveries)
	}
}
