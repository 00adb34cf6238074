<?php
// Broadcasts one event through Laravel's own redis broadcaster, booted from
// Debian's php-laravel-framework (no Composer): the Container, the Redis
// manager with the phpredis client and the prefix option of
// config/database.php, the BroadcastManager with the redis driver, the
// events and bus dispatchers, and a ShouldBroadcastNow event sent with
// broadcast(...)->toOthers() from a request carrying X-Socket-ID, as a
// controller would.
//
// php broadcast.php HOST PORT PREFIX CHANNEL EVENT_NAME SOCKET_ID JSON_DATA
// SOCKET_ID "" broadcasts to everyone. JSON_DATA is what the event's
// broadcastWith() returns (its payload).

require_once '/usr/share/php/Illuminate/autoload.php';
require_once '/usr/share/php/Illuminate/Foundation/helpers.php';

use Illuminate\Broadcasting\BroadcastManager;
use Illuminate\Broadcasting\Channel;
use Illuminate\Broadcasting\InteractsWithSockets;
use Illuminate\Broadcasting\PrivateChannel;
use Illuminate\Bus\Dispatcher as BusDispatcher;
use Illuminate\Config\Repository;
use Illuminate\Container\Container;
use Illuminate\Contracts\Broadcasting\Broadcaster as BroadcasterContract;
use Illuminate\Contracts\Broadcasting\Factory as BroadcastFactory;
use Illuminate\Contracts\Broadcasting\ShouldBroadcastNow;
use Illuminate\Contracts\Bus\Dispatcher as BusDispatcherContract;
use Illuminate\Events\Dispatcher as EventDispatcher;
use Illuminate\Http\Request;
use Illuminate\Redis\RedisManager;
use Illuminate\Support\Facades\Facade;

if ($argc !== 8) {
    fwrite(STDERR, "usage: php broadcast.php HOST PORT PREFIX CHANNEL EVENT_NAME SOCKET_ID JSON_DATA\n");
    exit(2);
}
[, $host, $port, $prefix, $channel, $eventName, $socketId, $json] = $argv;

$app = new Container();
Container::setInstance($app);
Facade::setFacadeApplication($app);

$app->instance('config', new Repository([
    'database' => ['redis' => [
        'client' => 'phpredis',
        'options' => ['prefix' => $prefix],
        'default' => ['host' => $host, 'port' => (int) $port, 'database' => 0],
    ]],
    'broadcasting' => [
        'default' => 'redis',
        'connections' => ['redis' => ['driver' => 'redis', 'connection' => 'default']],
    ],
]));
$app->singleton('redis', fn ($app) => new RedisManager($app, 'phpredis', $app['config']['database.redis']));
$app->singleton(BroadcastManager::class, fn ($app) => new BroadcastManager($app));
$app->alias(BroadcastManager::class, BroadcastFactory::class);
$app->bind(BroadcasterContract::class, fn ($app) => $app->make(BroadcastManager::class)->connection());
$app->singleton('events', fn ($app) => new EventDispatcher($app));
$app->singleton(BusDispatcherContract::class, fn ($app) => new BusDispatcher($app));

// The request of the browser that caused the event: Echo sends its socket id.
$request = Request::create('/orders/1/ship', 'POST');
if ($socketId !== '') {
    $request->headers->set('X-Socket-ID', $socketId);
}
$app->instance('request', $request);

class OrderShipped implements ShouldBroadcastNow
{
    use InteractsWithSockets;

    public function __construct(private string $channelName, private string $name, private array $props)
    {
    }

    public function broadcastOn()
    {
        if (str_starts_with($this->channelName, 'private-')) {
            return new PrivateChannel(substr($this->channelName, strlen('private-')));
        }
        return new Channel($this->channelName);
    }

    public function broadcastAs()
    {
        return $this->name;
    }

    public function broadcastWith()
    {
        return $this->props;
    }
}

$props = json_decode($json, true, 512, JSON_THROW_ON_ERROR);
$pending = broadcast(new OrderShipped($channel, $eventName, $props));
if ($socketId !== '') {
    $pending->toOthers();
}
// PendingBroadcast dispatches when it is destroyed.
unset($pending);
echo "broadcast\n";
