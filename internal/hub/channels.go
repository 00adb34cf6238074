package hub

import "sync"

// localChannel is the set of this node's subscribers of one channel. The
// slice makes fanout a tight loop; the index map makes removal O(1) by
// swapping with the last element.
type localChannel struct {
	mu    sync.RWMutex
	list  []*Client
	index map[*Client]int
	// hist, aligned with list, is each subscriber's position on a channel
	// with history (history.go); held is what waits for the subscribers
	// being set up. Both nil on every other channel, whose broadcasts then
	// cost what they always did.
	hist []histPos
	held map[*Client]*heldFrames
}

// lockChannel returns k's local channel, made if it has none yet, with
// its lock held.
func (h *Hub) lockChannel(k chanKey) *localChannel {
	sh := h.chanShard(k)
	sh.mu.Lock()
	lc := sh.m[k]
	if lc == nil {
		lc = &localChannel{index: make(map[*Client]int)}
		sh.m[k] = lc
	}
	lc.mu.Lock()
	sh.mu.Unlock()
	return lc
}

// channelOf returns k's local channel, nil when no local client is
// subscribed.
func (h *Hub) channelOf(k chanKey) *localChannel {
	sh := h.chanShard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[k]
}

// addLocal subscribes c to k on this node and, while still holding the
// channel's lock, queues first (the subscription_succeeded frame): a
// concurrent broadcast is then either wholly before it (not received) or
// wholly after it, never in between.
func (h *Hub) addLocal(k chanKey, c *Client, first []byte) {
	lc := h.lockChannel(k)
	if _, ok := lc.index[c]; !ok {
		lc.index[c] = len(lc.list)
		lc.list = append(lc.list, c)
		if lc.hist != nil {
			lc.hist = append(lc.hist, histPos{})
		}
	}
	if first != nil {
		c.conn.Send(first, 0)
	}
	lc.mu.Unlock()
}

// addLocalTracked subscribes c to k on this node as a subscriber whose
// position is tracked, being set up: what is broadcast on k waits for it
// until subscribeHistory has sent its history.
func (h *Hub) addLocalTracked(k chanKey, c *Client) *localChannel {
	lc := h.lockChannel(k)
	if lc.hist == nil {
		lc.hist = make([]histPos, len(lc.list), cap(lc.list))
		lc.held = make(map[*Client]*heldFrames)
	}
	i, ok := lc.index[c]
	if !ok {
		i = len(lc.list)
		lc.index[c] = i
		lc.list = append(lc.list, c)
		lc.hist = append(lc.hist, histPos{})
	}
	lc.hist[i] = histPos{tracked: true, setup: true}
	lc.held[c] = &heldFrames{}
	lc.mu.Unlock()
	return lc
}

// removeLocal unsubscribes c from k on this node.
func (h *Hub) removeLocal(k chanKey, c *Client) {
	sh := h.chanShard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	lc := sh.m[k]
	if lc == nil {
		return
	}
	lc.mu.Lock()
	if i, ok := lc.index[c]; ok {
		last := len(lc.list) - 1
		moved := lc.list[last]
		lc.list[i] = moved
		lc.index[moved] = i
		lc.list[last] = nil
		lc.list = lc.list[:last]
		delete(lc.index, c)
		if lc.hist != nil {
			lc.hist[i] = lc.hist[last]
			lc.hist[last] = histPos{}
			lc.hist = lc.hist[:last]
			delete(lc.held, c)
		}
	}
	empty := len(lc.list) == 0
	lc.mu.Unlock()
	if empty {
		delete(sh.m, k)
	}
}

// broadcast queues frame, stamped at (see Conn.Send), on every local
// subscriber of k except one, and returns how many were given the frame.
func (h *Hub) broadcast(k chanKey, frame []byte, at int64, except *Client) int {
	lc := h.channelOf(k)
	if lc == nil {
		return 0
	}
	n := 0
	lc.mu.RLock()
	if lc.hist != nil {
		lc.mu.RUnlock()
		return broadcastTracked(lc, frame, at, except)
	}
	for _, c := range lc.list {
		if c != except {
			c.conn.Send(frame, at)
			n++
		}
	}
	lc.mu.RUnlock()
	return n
}

// broadcastExceptID is broadcast with the excluded socket given by id, for
// messages from the HTTP API and other nodes.
func (h *Hub) broadcastExceptID(k chanKey, frame []byte, at int64, exceptID string) int {
	return h.broadcast(k, frame, at, h.client(exceptID))
}

// localCount is the number of this node's subscribers of k.
func (h *Hub) localCount(k chanKey) int {
	lc := h.channelOf(k)
	if lc == nil {
		return 0
	}
	lc.mu.RLock()
	defer lc.mu.RUnlock()
	return len(lc.list)
}
