'use strict';
// The official client's own BLE transport (@iotize/tap 2.7.0, protocol/ble/common:
// UniversalBleProtocolAdapter: service choice, legacy splitter/builder, large frames) on a
// virtual board's emulated radio. What a BLE plugin gives the library is a peripheral
// (connect, discoverServices, getService), services (getCharacteristic) and characteristics
// (write(data, writeWithoutResponse), enableNotifications, a `data` Observable of
// notifications); VblePeripheral provides them over the radio's unix socket, speaking the
// records of firmware/twintap/proto/vble.py with a central stack's rules: MTU 23 until it is
// exchanged (here at connection, as BlueZ and iOS do), no write longer than MTU-3.

const net = require('net');
const { Subject } = require('rxjs');
const { UniversalBleProtocolAdapter } = require('@iotize/tap/protocol/ble/common');

const OP = {
  CONNECT: 0x02, MTU: 0x03, DISCOVER: 0x04, WRITE: 0x05, DISCONNECT: 0x06,
  CONNECTED: 0x82, REFUSED: 0x83, MTU_EXCHANGED: 0x84, SERVICES: 0x85, WRITTEN: 0x86,
  ERROR: 0x87, NOTIFY: 0x88, DISCONNECTED: 0x89,
};
const MIN_MTU = 23;

function record(op, body = Buffer.alloc(0)) {
  const head = Buffer.alloc(3);
  head.writeUInt16BE(body.length + 1, 0);
  head[2] = op;
  return Buffer.concat([head, Buffer.from(body)]);
}

function uuidText(b) {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

class VbleCharacteristic {
  constructor(peripheral, uuid, handle) {
    this.peripheral = peripheral;
    this.uuid = uuid;
    this.handle = handle;
    this.data = new Subject();
  }

  write(data, writeWithoutResponse) {
    return this.peripheral._write(this.handle, data, !writeWithoutResponse);
  }

  enableNotifications() {
    return Promise.resolve(); // the radio notifies whatever the CCCD says, as MicroPython does
  }
}

class VbleService {
  constructor(uuid) {
    this.uuid = uuid;
    this.chars = {};
  }

  getCharacteristic(uuid) {
    const c = this.chars[uuid];
    return c ? Promise.resolve(c) : Promise.reject(new Error(`no characteristic ${uuid}`));
  }
}

class VblePeripheral {
  constructor(path, options = {}) {
    this.path = path;
    this.wantMtu = options.mtu || 517;
    this.connectTimeoutMs = options.connectTimeoutMs || 8000;
    this.state = 'disconnected';
    this.mtu = MIN_MTU;
    this.services = {};
    this.byHandle = {};
    this.stats = { writes: 0, notifications: 0, refused: 0 };
    this._buf = Buffer.alloc(0);
    this._waiter = undefined;
    this._notes = []; // notifications not delivered yet
  }

  // -- PeripheralAdapterInterface ---------------------------------------------------------------
  async connect() {
    const deadline = Date.now() + this.connectTimeoutMs;
    for (;;) {
      await this._open();
      const address = Buffer.from([0x01, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60]);
      const rep = await this._request(OP.CONNECT, address, [OP.CONNECTED, OP.REFUSED]);
      if (rep.op === OP.CONNECTED) break;
      this.stats.refused += 1;
      this.socket.destroy();
      if (Date.now() > deadline) throw new Error(`vble: ${rep.body.toString()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    this.state = 'connected';
    if (this.wantMtu > MIN_MTU) {
      const body = Buffer.alloc(2);
      body.writeUInt16BE(this.wantMtu, 0);
      const rep = await this._request(OP.MTU, body, [OP.MTU_EXCHANGED]);
      this.mtu = rep.body.readUInt16BE(0);
    }
  }

  async disconnect() {
    if (this.socket && !this.socket.destroyed) {
      this.socket.end(record(OP.DISCONNECT));
    }
    this.state = 'disconnected';
  }

  async discoverServices(uuids) {
    const rep = await this._request(OP.DISCOVER, undefined, [OP.SERVICES]);
    for (let i = 0; i + 36 <= rep.body.length; i += 36) {
      const e = rep.body.subarray(i, i + 36);
      const s = uuidText(e.subarray(0, 16));
      const c = uuidText(e.subarray(16, 32));
      const handle = e.readUInt16BE(32);
      this.services[s] = this.services[s] || new VbleService(s);
      const ch = new VbleCharacteristic(this, c, handle);
      this.services[s].chars[c] = ch;
      this.byHandle[handle] = ch;
    }
    const out = {};
    for (const u of uuids) if (this.services[u]) out[u] = this.services[u];
    return out;
  }

  getService(uuid) {
    const s = this.services[uuid];
    return s ? Promise.resolve(s) : Promise.reject(new Error(`no service ${uuid}`));
  }

  // -- the radio socket ---------------------------------------------------------------------
  _open() {
    return new Promise((resolve, reject) => {
      this._buf = Buffer.alloc(0);
      const socket = net.createConnection(this.path);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        socket.on('error', () => this._lost('socket error'));
        socket.on('close', () => this._lost('closed'));
        socket.on('data', (d) => this._data(d));
        this.socket = socket;
        resolve();
      });
    });
  }

  _write(handle, data, withResponse) {
    if (data.length > this.mtu - 3) {
      return Promise.reject(new Error(`vble: write of ${data.length} bytes > MTU-3 (${this.mtu - 3})`));
    }
    this.stats.writes += 1;
    const head = Buffer.from([withResponse ? 1 : 0, handle >> 8, handle & 0xff]);
    const body = Buffer.concat([head, Buffer.from(data)]);
    if (!withResponse) {
      this.socket.write(record(OP.WRITE, body));
      return Promise.resolve(new Uint8Array(0));
    }
    return this._request(OP.WRITE, body, [OP.WRITTEN]).then(() => new Uint8Array(0));
  }

  _request(op, body, want) {
    return new Promise((resolve, reject) => {
      this._waiter = { want, resolve, reject };
      this.socket.write(record(op, body));
    });
  }

  _data(chunk) {
    this._buf = Buffer.concat([this._buf, chunk]);
    while (this._buf.length >= 2) {
      const n = this._buf.readUInt16BE(0);
      if (this._buf.length < 2 + n) return;
      const op = this._buf[2];
      const body = Buffer.from(this._buf.subarray(3, 2 + n));
      this._buf = this._buf.subarray(2 + n);
      this._record(op, body);
    }
  }

  _record(op, body) {
    if (op === OP.NOTIFY) {
      // one notification per event-loop turn, as a platform's BLE callbacks come: the
      // library reads a legacy response one packet at a time, re-subscribing in between
      const ch = this.byHandle[body.readUInt16BE(0)];
      this.stats.notifications += 1;
      if (ch) {
        this._notes.push([ch, Uint8Array.from(body.subarray(2))]);
        if (this._notes.length === 1) setImmediate(() => this._deliver());
      }
      return;
    }
    if (op === OP.DISCONNECTED) {
      this._lost('disconnected by the board');
      return;
    }
    const w = this._waiter;
    if (!w) return;
    if (w.want.includes(op)) {
      this._waiter = undefined;
      w.resolve({ op, body });
    } else if (op === OP.ERROR) {
      this._waiter = undefined;
      w.reject(new Error(`vble: ATT error 0x${body[0].toString(16)}`));
    }
  }

  _deliver() {
    const [ch, data] = this._notes.shift();
    ch.data.next({ data, isNotification: true });
    if (this._notes.length) setImmediate(() => this._deliver());
  }

  _lost(why) {
    this.state = 'disconnected';
    const w = this._waiter;
    this._waiter = undefined;
    if (w) w.reject(new Error(`vble: ${why}`));
  }
}

function vbleProtocol(path, options = {}) {
  const peripheral = new VblePeripheral(path, options);
  const protocol = new UniversalBleProtocolAdapter(peripheral, {
    preferedComServiceType: options.service || 'large-frame',
  });
  if (options.sendTimeoutMs) protocol.options.send.timeout = options.sendTimeoutMs;
  protocol.peripheralStats = peripheral.stats;
  return protocol;
}

module.exports = { VblePeripheral, vbleProtocol };
