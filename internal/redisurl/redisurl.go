// Package redisurl turns a Redis URL and a mode (one Redis, Redis Sentinel
// or Redis Cluster) into go-redis's UniversalOptions, through go-redis's own
// URL parsers, so that an operator writes the URL go-redis documents and
// NewUniversalClient builds the matching client. It is the one owner of what
// a Redis setting may say: config validation and the server both use it.
package redisurl

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The modes of a Redis setting.
const (
	// Single is one Redis server (or a proxy in front of several):
	// redis://[user:password@]host:port[/db].
	Single = "single"
	// Sentinel is a primary found through Redis Sentinel:
	// redis://[user:password@]sentinel1:26379[/db]?master_name=mymaster&addr=sentinel2:26379
	// (the user info authenticates with the sentinels; the primary's
	// password is the password query parameter).
	Sentinel = "sentinel"
	// Cluster is a Redis Cluster: redis://[user:password@]host1:7000?addr=host2:7001
	// (any of its nodes; the others are discovered).
	Cluster = "cluster"
)

// Modes lists the modes, Single first (the default).
var Modes = []string{Single, Sentinel, Cluster}

// Parse returns the options for raw in mode ("" is Single). The error never
// quotes the URL: it may hold a password.
func Parse(mode, raw string) (*redis.UniversalOptions, error) {
	if mode == "" {
		mode = Single
	}
	if !slices.Contains(Modes, mode) {
		return nil, fmt.Errorf("unknown Redis mode %q (want one of %s)", mode, strings.Join(Modes, ", "))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("it does not parse as a URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("want a redis:// or rediss:// URL, got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("want a redis:// or rediss:// URL, got no host")
	}
	switch mode {
	case Sentinel:
		o, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, clean(err)
		}
		if o.MasterName == "" {
			return nil, errors.New("a sentinel URL needs the primary's name: ?master_name=mymaster")
		}
		return &redis.UniversalOptions{
			Addrs: o.SentinelAddrs, MasterName: o.MasterName,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB, ClientName: o.ClientName,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
			MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns, MaxActiveConns: o.MaxActiveConns,
			ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
		}, nil
	case Cluster:
		if u.Path != "" && u.Path != "/" && u.Path != "/0" {
			return nil, errors.New("a Redis Cluster has database 0 only: drop the path")
		}
		u.Path = ""
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, clean(err)
		}
		return &redis.UniversalOptions{
			Addrs: o.Addrs, IsClusterMode: true,
			Username: o.Username, Password: o.Password, ClientName: o.ClientName,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
			MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns, MaxActiveConns: o.MaxActiveConns,
			ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
			MaxRedirects: o.MaxRedirects,
		}, nil
	default:
		if u.Query().Has("addr") || u.Query().Has("master_name") {
			return nil, errors.New("several addresses or a master_name need redis_mode sentinel or cluster")
		}
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, clean(err)
		}
		return &redis.UniversalOptions{
			Addrs:    []string{o.Addr},
			Username: o.Username, Password: o.Password, DB: o.DB, ClientName: o.ClientName,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
			MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns, MaxActiveConns: o.MaxActiveConns,
			ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
		}, nil
	}
}

// Mode returns the mode options were made for (by Parse, or by hand with
// NewUniversalClient's rules: a master name is Sentinel, IsClusterMode or
// several addresses a Cluster).
func Mode(o *redis.UniversalOptions) string {
	switch {
	case o.MasterName != "":
		return Sentinel
	case o.IsClusterMode || len(o.Addrs) > 1:
		return Cluster
	}
	return Single
}

// clean drops what go-redis's errors may quote of the URL: only the
// messages that name a query parameter or a part are kept.
func clean(err error) error {
	msg := err.Error()
	for _, keep := range []string{"unexpected option", "invalid database number", "invalid URL path", "unable to parse addr", "invalid URL scheme"} {
		if strings.Contains(msg, keep) {
			// go-redis quotes an option's name, a path or an address,
			// never the user info.
			return errors.New(strings.TrimPrefix(msg, "redis: "))
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New("it does not parse as a URL")
	}
	return errors.New("go-redis refuses it (check the query parameters)")
}
