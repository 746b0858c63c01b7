// Switchboard browser SDK: join a room, publish and subscribe.
// A plain ES module, no build step. The protocol is docs/signaling.md.
//
//   import { connect } from '/sdk/switchboard.js';
//   const room = await connect(url, token);
//   room.on('track_subscribed', ({ track, participant }) => attach(track));
//   await room.publishCamera(); await room.publishMicrophone();

// Long enough for the control plane to take a dead node for dead (15 s) and move its rooms.
const RECONNECT_WINDOW_MS = 30000;
const DATA_LIMIT_BYTES = 15 * 1024;

class Emitter {
  constructor() { this._handlers = new Map(); }
  /** Registers `fn` for `event`; returns a function that removes it. */
  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return () => this._handlers.get(event).delete(fn);
  }
  emit(event, ...args) {
    for (const fn of this._handlers.get(event) || []) {
      try { fn(...args); } catch (e) { console.error(`switchboard: '${event}' handler failed`, e); }
    }
  }
}

/** An error the server or the SDK reports, with a stable code. */
export class SwitchboardError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

/**
 * Connects to a room with an access token and resolves once joined.
 * `url` is the `url` returned by POST /v1/tokens (ws://host/rtc); pass its
 * `route_url` as `options.routeUrl` so that, should the room's media node
 * die, the SDK finds the room's new node and joins there with the same token.
 */
export async function connect(url, token, options = {}) {
  const room = new Room(url, token, options);
  await room._open();
  return room;
}

/** A joined room. Events: participant_joined, participant_left, participant_updated,
 * track_published, track_unpublished, track_subscribed, track_unsubscribed, track_muted,
 * active_speakers, connection_quality, data, reconnecting, reconnected, ice_restart, disconnected, error. */
export class Room extends Emitter {
  constructor(url, token, options) {
    super();
    this.url = url;
    this.token = token;
    this.options = { autoSubscribe: true, ...options };
    /** Remote participants by sid. */
    this.participants = new Map();
    /** This participant as the server describes it. */
    this.localParticipant = null;
    /** Own tracks by sid: { sid, track, sender, info }. */
    this.localTracks = new Map();
    this.publisher = null;
    this.subscriber = null;
    this._pendingAdds = new Map();
    this._reconnectToken = null;
    this._closed = false;
    this._dataChannels = {};
    this._publishing = Promise.resolve();
    this._inbox = Promise.resolve();
    this._pinger = null;
    this._iceTimer = null;
    // The device's network changed (Wi-Fi to cellular, a VPN): the old ICE
    // path may be gone before the browser notices.
    this._onNetworkChange = () => this.restartIce();
    if (typeof window !== 'undefined') window.addEventListener('online', this._onNetworkChange);
    if (typeof navigator !== 'undefined' && navigator.connection) navigator.connection.addEventListener('change', this._onNetworkChange);
  }

  async _open(reconnect = false) {
    const wsUrl = new URL(this.url);
    wsUrl.searchParams.set('access_token', this.token);
    if (reconnect && this._reconnectToken) wsUrl.searchParams.set('reconnect', this._reconnectToken);
    const ws = new WebSocket(wsUrl);
    this._ws = ws;
    const joined = new Promise((resolve, reject) => {
      this._joinWaiter = { resolve, reject };
      ws.onerror = () => reject(new SwitchboardError('connection_failed', `cannot reach ${this.url}`));
      ws.onclose = (ev) => reject(new SwitchboardError('closed', ev.reason || `closed with code ${ev.code}`));
    });
    // Messages are handled one at a time, in order: a candidate must not be
    // applied before the description it belongs to.
    ws.onmessage = (ev) => {
      this._inbox = this._inbox.then(() => this._onMessage(ev.data)).catch((e) => {
        this.emit('error', new SwitchboardError('signaling_failed', String(e)));
      });
    };
    const join = await joined;
    ws.onerror = null;
    ws.onclose = (ev) => this._onSocketClosed(ev);
    clearInterval(this._pinger);
    this._pinger = setInterval(() => this._send({ type: 'ping' }), 10000);
    return join;
  }

  _send(msg) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(JSON.stringify(msg));
  }

  _newPeerConnection(target, iceServers) {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    pc.onicecandidate = (ev) => {
      if (ev.candidate) this._send({ type: 'candidate', target, candidate: ev.candidate.toJSON() });
    };
    // A path that broke (a network change, a NAT that forgot us) is found
    // again by an ICE restart: same session, same tracks.
    pc.oniceconnectionstatechange = () => {
      const state = pc.iceConnectionState;
      clearTimeout(this._iceTimer);
      if (state === 'failed') this.restartIce();
      else if (state === 'disconnected') this._iceTimer = setTimeout(() => this.restartIce(), 2000);
    };
    return pc;
  }

  /** Restarts ICE on both connections (new credentials, same participant and
   * tracks), as the SDK does by itself when the network changes or a
   * connection fails. */
  restartIce() {
    if (this._closed || !this.publisher) return Promise.resolve();
    this.emit('ice_restart');
    this._send({ type: 'ice_restart' });
    return this._renegotiate({ iceRestart: true });
  }

  async _onMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    switch (msg.type) {
      case 'join': return this._onJoin(msg);
      case 'resumed': return this._onResumed(msg);
      case 'offer': return this._onSubscriberOffer(msg.sdp);
      case 'answer': return this._onPublisherAnswer(msg.sdp);
      case 'candidate': {
        const pc = msg.target === 'publisher' ? this.publisher : this.subscriber;
        try { await pc.addIceCandidate(msg.candidate); } catch (e) { console.warn('switchboard: bad candidate', e); }
        return;
      }
      case 'participant_joined':
        this.participants.set(msg.participant.sid, msg.participant);
        return this.emit('participant_joined', msg.participant);
      case 'participant_left': {
        const p = this.participants.get(msg.sid);
        this.participants.delete(msg.sid);
        return this.emit('participant_left', p || { sid: msg.sid, identity: msg.identity }, msg.reason);
      }
      case 'participant_updated':
        if (this.localParticipant && msg.participant.sid === this.localParticipant.sid) this.localParticipant = msg.participant;
        else this.participants.set(msg.participant.sid, msg.participant);
        return this.emit('participant_updated', msg.participant);
      case 'track_published': return this._onTrackPublished(msg);
      case 'track_unpublished': {
        const p = this.participants.get(msg.participant_sid);
        if (p) p.tracks = p.tracks.filter((t) => t.sid !== msg.track_sid);
        return this.emit('track_unpublished', { participantSid: msg.participant_sid, trackSid: msg.track_sid });
      }
      case 'track_muted': return this.emit('track_muted', { participantSid: msg.participant_sid, trackSid: msg.track_sid, muted: msg.muted });
      case 'active_speakers': return this.emit('active_speakers', msg.speakers);
      case 'connection_quality': return this.emit('connection_quality', msg.updates);
      case 'leave':
        this._closed = true;
        return this._teardown(msg.reason);
      case 'error': return this.emit('error', new SwitchboardError(msg.code, msg.message));
      case 'pong': return undefined;
      default: return undefined;
    }
  }

  _onJoin(msg) {
    const rejoining = this.publisher !== null;
    this.room = msg.room;
    this.localParticipant = msg.participant;
    this._reconnectToken = msg.reconnect_token;
    this.participants = new Map(msg.participants.map((p) => [p.sid, p]));
    // A join after a dropped socket means the server could not resume the old
    // session (too late): this is a new session, so publish again.
    const republish = rejoining ? [...this.localTracks.values()] : [];
    if (rejoining) {
      for (const pc of [this.publisher, this.subscriber]) pc.close();
      this.localTracks.clear();
      this._publishing = Promise.resolve();
    }
    this.publisher = this._newPeerConnection('publisher', msg.ice_servers);
    this.subscriber = this._newPeerConnection('subscriber', msg.ice_servers);
    this.subscriber.ontrack = (ev) => this._onRemoteTrack(ev);
    this.subscriber.ondatachannel = (ev) => this._onRemoteDataChannel(ev.channel);
    this._dataChannels.reliable = this.publisher.createDataChannel('_reliable', { ordered: true });
    this._dataChannels.lossy = this.publisher.createDataChannel('_lossy', { ordered: false, maxRetransmits: 0 });
    this._renegotiate();
    this._joinWaiter.resolve(msg);
    if (rejoining) {
      Promise.all(republish.map((t) => this.publishTrack(t.track, { source: t.info.source, simulcast: t.info.simulcast })))
        .then(() => this.emit('reconnected'))
        .catch((e) => this.emit('error', new SwitchboardError('republish_failed', String(e))));
    }
  }

  // The session outlived the dropped socket: same participant, same peer
  // connections, media never stopped. Only the room's roster may have moved on.
  _onResumed(msg) {
    this.localParticipant = msg.participant;
    this._reconnectToken = msg.reconnect_token;
    const now = new Map(msg.participants.map((p) => [p.sid, p]));
    for (const [sid, p] of this.participants) if (!now.has(sid)) this.emit('participant_left', p, 'left_while_reconnecting');
    for (const [sid, p] of now) if (!this.participants.has(sid)) this.emit('participant_joined', p);
    this.participants = now;
    this._joinWaiter.resolve(msg);
    this.emit('reconnected');
  }

  async _onSubscriberOffer(sdp) {
    await this.subscriber.setRemoteDescription({ type: 'offer', sdp });
    const answer = await this.subscriber.createAnswer();
    await this.subscriber.setLocalDescription(answer);
    this._send({ type: 'answer', sdp: answer.sdp });
  }

  _onRemoteTrack(ev) {
    const participantSid = ev.streams[0] ? ev.streams[0].id : null;
    const participant = this.participants.get(participantSid) || { sid: participantSid };
    const info = (participant.tracks || []).find((t) => t.sid === ev.track.id) || { sid: ev.track.id, kind: ev.track.kind };
    const payload = { track: ev.track, stream: ev.streams[0], participant, trackInfo: info, transceiver: ev.transceiver };
    ev.track.addEventListener('ended', () => this.emit('track_unsubscribed', payload));
    this.emit('track_subscribed', payload);
  }

  _onRemoteDataChannel(channel) {
    channel.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data)); } catch { return; }
      this.emit('data', { from: msg.from, topic: msg.topic, payload: msg.payload, reliable: channel.label === '_reliable' });
    };
  }

  _onTrackPublished(msg) {
    if (msg.cid && this._pendingAdds.has(msg.cid)) {
      const pending = this._pendingAdds.get(msg.cid);
      this._pendingAdds.delete(msg.cid);
      const local = { sid: msg.track.sid, track: pending.track, sender: pending.sender, info: msg.track };
      this.localTracks.set(msg.track.sid, local);
      pending.resolve(local);
      return;
    }
    const p = this.participants.get(msg.participant_sid);
    if (p) p.tracks = [...(p.tracks || []).filter((t) => t.sid !== msg.track.sid), msg.track];
    this.emit('track_published', { participant: p, track: msg.track });
  }

  // One publisher negotiation at a time: the next offer waits for the last answer.
  _renegotiate(options = {}) {
    this._publishing = this._publishing.then(async () => {
      const offer = await this.publisher.createOffer(options);
      await this.publisher.setLocalDescription(offer);
      const answered = new Promise((resolve) => { this._onAnswer = resolve; });
      this._send({ type: 'offer', sdp: offer.sdp });
      await answered;
    }).catch((e) => this.emit('error', new SwitchboardError('negotiation_failed', String(e))));
    return this._publishing;
  }

  async _onPublisherAnswer(sdp) {
    await this.publisher.setRemoteDescription({ type: 'answer', sdp });
    const resolve = this._onAnswer;
    this._onAnswer = null;
    if (resolve) resolve();
  }

  /** Publishes a MediaStreamTrack; resolves with { sid, track, sender, info } once the server accepted it. */
  async publishTrack(track, { source, name, simulcast = false } = {}) {
    source = source || (track.kind === 'audio' ? 'microphone' : 'camera');
    const accepted = new Promise((resolve, reject) => {
      this._pendingAdds.set(track.id, { track, resolve, reject });
    });
    this._send({ type: 'add_track', cid: track.id, kind: track.kind, source, name, simulcast });
    const stream = new MediaStream([track]);
    let sender;
    if (simulcast && track.kind === 'video') {
      const t = this.publisher.addTransceiver(track, {
        direction: 'sendonly',
        streams: [stream],
        sendEncodings: [
          { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
          { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
          { rid: 'f', maxBitrate: 1500000 },
        ],
      });
      sender = t.sender;
    } else {
      sender = this.publisher.addTrack(track, stream);
    }
    this._pendingAdds.get(track.id).sender = sender;
    await this._renegotiate();
    return accepted;
  }

  /** Publishes the camera (getUserMedia video). */
  async publishCamera(constraints = true, options = {}) {
    const media = await navigator.mediaDevices.getUserMedia({ video: constraints });
    return this.publishTrack(media.getVideoTracks()[0], { source: 'camera', ...options });
  }

  /** Publishes the microphone (getUserMedia audio). */
  async publishMicrophone(constraints = true) {
    const media = await navigator.mediaDevices.getUserMedia({ audio: constraints });
    return this.publishTrack(media.getAudioTracks()[0], { source: 'microphone' });
  }

  /** Publishes a screen share (getDisplayMedia). */
  async publishScreen() {
    const media = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
    const published = [await this.publishTrack(media.getVideoTracks()[0], { source: 'screen_share' })];
    if (media.getAudioTracks()[0]) published.push(await this.publishTrack(media.getAudioTracks()[0], { source: 'screen_share_audio' }));
    return published;
  }

  /** Mutes or unmutes one of this participant's tracks. */
  setMuted(trackSid, muted) {
    const local = this.localTracks.get(trackSid);
    if (local) local.track.enabled = !muted;
    this._send({ type: 'mute', track_sid: trackSid, muted });
  }

  /** Subscribes to (or unsubscribes from) the given track sids. */
  subscribe(trackSids, subscribe = true) {
    this._send({ type: 'subscribe', track_sids: trackSids, subscribe });
  }

  /** Caps the simulcast layer received for a video track: 'low', 'medium' or 'high'. */
  setLayer(trackSid, layer) {
    this._send({ type: 'set_layer', track_sid: trackSid, layer });
  }

  /** Changes this participant's metadata and/or name (needs the can_update_metadata grant). */
  updateMetadata({ metadata, name }) {
    this._send({ type: 'update_metadata', metadata, name });
  }

  /** Removes another participant (needs room_admin). */
  removeParticipant(identity) {
    this._send({ type: 'remove_participant', identity });
  }

  /** Mutes or unmutes another participant's track; its publisher cannot undo it (needs room_admin). */
  muteParticipant(identity, trackSid, muted = true) {
    this._send({ type: 'mute_participant', identity, track_sid: trackSid, muted });
  }

  /** Changes another participant's name, metadata or permissions (needs room_admin). */
  updateParticipant(identity, { name, metadata, permissions } = {}) {
    this._send({ type: 'update_participant', identity, name, metadata, permissions });
  }

  /** Sends a data message to everyone else; `reliable: false` uses the lossy channel. */
  sendData(payload, { reliable = true, topic } = {}) {
    const text = JSON.stringify({ topic, payload });
    if (new TextEncoder().encode(text).length > DATA_LIMIT_BYTES) {
      throw new SwitchboardError('data_too_large', `data messages are limited to ${DATA_LIMIT_BYTES} bytes`);
    }
    const channel = reliable ? this._dataChannels.reliable : this._dataChannels.lossy;
    if (!channel || channel.readyState !== 'open') throw new SwitchboardError('data_not_ready', 'the data channel is not open yet');
    channel.send(text);
  }

  /** Leaves the room. */
  leave() {
    this._closed = true;
    this._send({ type: 'leave' });
    this._teardown('client_left');
  }

  async _onSocketClosed(ev) {
    if (this._closed) return;
    if (ev.code === 4000 || ev.code === 1008) {
      this._closed = true;
      return this._teardown(ev.reason || 'closed');
    }
    this.emit('reconnecting');
    const deadline = Date.now() + RECONNECT_WINDOW_MS;
    for (let delay = 250; Date.now() < deadline && !this._closed; delay = Math.min(delay * 2, 4000)) {
      await new Promise((r) => setTimeout(r, delay));
      try {
        await this._open(true);
        return undefined;
      } catch (e) {
        if (e.code === 'closed' && /expired|refused|removed/.test(e.message)) break;
        await this._reroute();
      }
    }
    this._closed = true;
    return this._teardown('connection_lost');
  }

  // Asks the API where the room is now: once its node is taken for dead, the
  // room moves to a healthy node of the same region. A new node knows
  // nothing of the old session, so the join there starts a new one.
  async _reroute() {
    if (!this.options.routeUrl) return;
    try {
      const res = await fetch(this.options.routeUrl, { headers: { Authorization: `Bearer ${this.token}` } });
      if (!res.ok) return;
      const { url } = await res.json();
      if (url && url !== this.url) {
        this.url = url;
        this._reconnectToken = null;
      }
    } catch {
      // The API is out of reach as well: the next round asks again.
    }
  }

  _teardown(reason) {
    clearInterval(this._pinger);
    clearTimeout(this._iceTimer);
    if (typeof window !== 'undefined') window.removeEventListener('online', this._onNetworkChange);
    if (typeof navigator !== 'undefined' && navigator.connection) navigator.connection.removeEventListener('change', this._onNetworkChange);
    for (const pc of [this.publisher, this.subscriber]) if (pc) pc.close();
    if (this._ws && this._ws.readyState <= WebSocket.OPEN) this._ws.close(1000, reason);
    for (const local of this.localTracks.values()) local.track.stop();
    this.emit('disconnected', reason);
  }
}
