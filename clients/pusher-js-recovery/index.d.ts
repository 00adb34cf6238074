/** A place in a channel's history: the epoch changes when history is lost, the offset grows by one per event. */
export interface Position {
  epoch: string;
  offset: number;
}

/** The outcome of one recovery: the data of Herald's `herald:recovery` event. */
export interface RecoveryResult {
  channel: string;
  /** true: every missed event was replayed, in order, before this. */
  recovered: boolean;
  /** How many events were replayed. */
  replayed: number;
  /** Why recovery failed: `epoch_changed`, `too_old`, `invalid` or `no_history`. */
  reason?: string;
  /** Where the channel stands now; live events continue after it. */
  position: Position | null;
}

export interface RecoveryOptions {
  /** Called with every recovery's outcome; refetch the channel's state when `recovered` is false. */
  onRecovery?: (result: RecoveryResult) => void;
}

export declare class Recovery {
  /** Adds a listener for every recovery's outcome; returns its remover. */
  onRecovery(fn: (result: RecoveryResult) => void): () => void;
  /** The last position seen on a channel, or null. */
  position(channel: string): Position | null;
  /** Sets the position the channel's next subscription recovers from. */
  setPosition(channel: string, position: Position): void;
  /** Forgets a channel's position: its next subscription starts fresh. */
  forget(channel: string): void;
  /** Turns recovery off and restores the client's own methods. */
  disable(): void;
}

/**
 * Turns recovery on for a pusher-js client, or a Laravel Echo instance using
 * the `pusher` or `reverb` broadcaster. Call it before subscribing.
 */
export declare function enableRecovery(client: object, options?: RecoveryOptions): Recovery;
export default enableRecovery;
