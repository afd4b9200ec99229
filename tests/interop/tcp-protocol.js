'use strict';
// A TCP ComProtocol for @iotize/tap 2.7.0, written the way the library expects a custom
// transport (spec tap-protocol.md section 8): subclass QueueComProtocol (which serialises
// sends and runs write() then read() under one timeout) and implement _connect/_disconnect,
// write, read and receiveStream.
//
// Framing is raw, as IoTize's own socket transports do it: one APDU per write, no length
// prefix. A response is what arrives until the data ends with 90 00 and the stream then stays
// quiet for `quietMs`; data that does not end with 90 00 is handed over after `idleMs` of
// silence anyway (the library then reports the bad APDU status itself).

const net = require('net');
const { Observable, Subject } = require('rxjs');
const { share } = require('rxjs/operators');
const { QueueComProtocol } = require('@iotize/tap/protocol/core');
const { ConnectionState } = require('@iotize/tap/protocol/api');

const SW_OK_1 = 0x90;
const SW_OK_2 = 0x00;

function endsWithStatusOk(buf) {
  const n = buf.length;
  return n >= 2 && buf[n - 2] === SW_OK_1 && buf[n - 1] === SW_OK_2;
}

class TcpComProtocol extends QueueComProtocol {
  /**
   * @param {{host: string, port: number, quietMs?: number, idleMs?: number,
   *          sendTimeoutMs?: number, connectTimeoutMs?: number}} options
   */
  constructor(options) {
    super();
    this.host = options.host;
    this.port = options.port;
    this.quietMs = options.quietMs !== undefined ? options.quietMs : 5;
    this.idleMs = options.idleMs !== undefined ? options.idleMs : 100;
    this.options = {
      connect: { timeout: options.connectTimeoutMs || 3000 },
      disconnect: { timeout: 1000 },
      send: { timeout: options.sendTimeoutMs || 3000 },
    };
    this.socket = undefined;
    this._chunks = [];        // bytes of the response being received
    this._timer = undefined;  // end-of-response timer
    this._ready = [];         // complete responses nobody has asked for yet
    this._waiters = [];       // read() calls waiting for a response: {resolve, reject}
    this._received = new Subject();
    this.stats = { writes: 0, responses: 0, discarded: 0 };
  }

  // -- ComProtocol hooks ---------------------------------------------------------------------

  _connect() {
    return new Observable((subscriber) => {
      const socket = net.createConnection({ host: this.host, port: this.port });
      socket.setNoDelay(true);
      const onError = (err) => subscriber.error(err);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.removeListener('error', onError);
        this._attach(socket);
        subscriber.next(undefined);
        subscriber.complete();
      });
      return () => socket.removeListener('error', onError);
    }).pipe(share()); // connect() subscribes twice: one socket, not two
  }

  _disconnect() {
    return new Observable((subscriber) => {
      const socket = this.socket;
      if (!socket || socket.destroyed) {
        subscriber.next(undefined);
        subscriber.complete();
        return undefined;
      }
      socket.once('close', () => {
        subscriber.next(undefined);
        subscriber.complete();
      });
      socket.end();
      const t = setTimeout(() => socket.destroy(), 200);
      return () => clearTimeout(t);
    }).pipe(share());
  }

  write(data) {
    return new Promise((resolve, reject) => {
      const socket = this.socket;
      if (!socket || socket.destroyed) {
        reject(new Error('TcpComProtocol: socket is not open'));
        return;
      }
      // Anything still buffered belongs to an earlier exchange (e.g. one that timed out).
      // A read() left waiting by a timed-out exchange is dropped too (its timeout already
      // settled the caller), so this exchange's response goes to this exchange's read().
      this.stats.discarded += this._ready.length + (this._chunks.length ? 1 : 0);
      this._ready = [];
      this._chunks = [];
      this._waiters = [];
      this._clearTimer();
      this.stats.writes += 1;
      socket.write(Buffer.from(data), (err) => (err ? reject(err) : resolve()));
    });
  }

  read() {
    if (this._ready.length) {
      return Promise.resolve(this._ready.shift());
    }
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
  }

  receiveStream() {
    return this._received.asObservable();
  }

  // -- internals -----------------------------------------------------------------------------

  _attach(socket) {
    this.socket = socket;
    socket.on('data', (chunk) => this._onData(chunk));
    socket.on('error', () => { /* 'close' follows and does the bookkeeping */ });
    socket.on('close', () => {
      this._clearTimer();
      if (this.socket === socket) {
        this.socket = undefined;
      }
      const waiters = this._waiters;
      this._waiters = [];
      for (const w of waiters) {
        w.reject(new Error('TcpComProtocol: connection closed'));
      }
      if (this.getConnectionState() !== ConnectionState.DISCONNECTED) {
        this.setConnectionState(ConnectionState.DISCONNECTED);
      }
    });
  }

  _onData(chunk) {
    this._chunks.push(chunk);
    this._clearTimer();
    const pending = Buffer.concat(this._chunks);
    this._chunks = [pending];
    const wait = endsWithStatusOk(pending) ? this.quietMs : this.idleMs;
    this._timer = setTimeout(() => this._complete(), wait);
  }

  _complete() {
    this._timer = undefined;
    if (!this._chunks.length) {
      return;
    }
    const response = new Uint8Array(Buffer.concat(this._chunks));
    this._chunks = [];
    this.stats.responses += 1;
    this._received.next(response);
    const w = this._waiters.shift();
    if (w) {
      w.resolve(response);
    } else {
      this._ready.push(response);
    }
  }

  _clearTimer() {
    if (this._timer !== undefined) {
      clearTimeout(this._timer);
      this._timer = undefined;
    }
  }
}

module.exports = { TcpComProtocol };
