// A browser softphone for the consoles: one SIP.js user agent registered to the agent's (or the
// supervisor's) WebRTC endpoint on Asterisk, over SIP on a WebSocket.
//
//   import { Softphone } from "/static/softphone.js";
//   const phone = new Softphone({ wsUrl, sipUri, username, password, audio: audioElement });
//   phone.addEventListener("change", () => render(phone.status()));
//   await phone.start();            // connect + register; reconnects after a network blip
//   phone.answer(); phone.mute(true); await phone.hold(true); phone.sendDtmf("12#"); phone.hangUp();
//   await phone.stats();            // WebRTC getStats, summarised (audio in and out)
//
// The dialer calls the phone (a nailed-up campaign leg, a click-to-call leg, a monitoring leg);
// this phone never dials out by itself. It handles one call at a time: a second call while one
// is up is answered "busy here" (486).
//
// Plain ES module over the vendored SIP.js (vendor/MANIFEST.json): no build step, no CDN.

import {
  Registerer,
  RegistererState,
  SessionState,
  UserAgent,
} from "./vendor/sip.js-0.21.2/lib/index.js";

/** Registration states, as shown to the person: */
export const Registration = Object.freeze({
  OFFLINE: "offline", // not started, or stopped
  CONNECTING: "connecting", // opening the WebSocket / sending REGISTER
  REGISTERED: "registered",
  FAILED: "failed", // wrong credentials or refused: `lastError` says why
  RECONNECTING: "reconnecting", // the WebSocket dropped; trying again
});

/** Call states: */
export const CallState = Object.freeze({
  IDLE: "idle",
  RINGING: "ringing", // an incoming call waits for answer()
  CONNECTING: "connecting", // answered, media being set up
  ACTIVE: "active",
  ENDED: "ended", // the last call ended (then IDLE on the next call)
});

/** Microphone permission: */
export const Microphone = Object.freeze({
  UNKNOWN: "unknown",
  GRANTED: "granted",
  DENIED: "denied",
});

// After a network blip the phone reconnects by itself, forever, with a growing delay.
const RECONNECT_DELAYS_MS = [0, 1000, 2000, 5000, 10000];
const REGISTER_EXPIRES_S = 300;
const LOG_LINES_KEPT = 200;

export class Softphone extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.wsUrl     SIP WebSocket server, e.g. "ws://127.0.0.1:8088/ws"
   * @param {string} options.sipUri    this phone's address, e.g. "sip:agent1001-web@127.0.0.1"
   * @param {string} options.username  digest username (the endpoint name)
   * @param {string} options.password  digest password
   * @param {HTMLAudioElement} [options.audio]  where the far end is played
   * @param {boolean} [options.autoAnswer=false]  answer every incoming call at once
   * @param {RTCIceServer[]} [options.iceServers=[]]  STUN/TURN servers (none on one machine)
   */
  constructor(options) {
    super();
    this.options = { autoAnswer: false, iceServers: [], ...options };
    this.registration = Registration.OFFLINE;
    this.callState = CallState.IDLE;
    this.microphone = Microphone.UNKNOWN;
    this.muted = false;
    this.held = false;
    this.caller = null; // display name and number of the current (or last) call
    this.lastError = null;
    this.callsAnswered = 0;
    this.log = []; // the last SIP.js warnings and errors, for a "report a problem" button
    this._reconnects = 0;
    this._reconnectTimer = null;
    this._stopping = false;
    this._session = null;
    this._userAgent = null;
    this._registerer = null;
  }

  /** A plain snapshot for a page to render, or a test to read. */
  status() {
    return {
      registration: this.registration,
      call: this.callState,
      microphone: this.microphone,
      muted: this.muted,
      held: this.held,
      caller: this.caller,
      lastError: this.lastError,
      callsAnswered: this.callsAnswered,
    };
  }

  /** Ask for the microphone, connect and register. Resolves once the REGISTER is sent. */
  async start() {
    await this._checkMicrophone();
    const uri = UserAgent.makeURI(this.options.sipUri);
    if (!uri) throw new Error(`not a SIP URI: ${this.options.sipUri}`);
    this._userAgent = new UserAgent({
      uri,
      authorizationUsername: this.options.username,
      authorizationPassword: this.options.password,
      transportOptions: { server: this.options.wsUrl },
      logLevel: "warn",
      logBuiltinEnabled: false,
      logConnector: (level, category, label, content) => {
        this.log.push(`${new Date().toISOString()} ${level} ${category} ${content}`);
        if (this.log.length > LOG_LINES_KEPT) this.log.shift();
      },
      sessionDescriptionHandlerFactoryOptions: {
        peerConnectionConfiguration: { iceServers: this.options.iceServers },
        // Loopback and LAN candidates are gathered at once; do not wait for STUN that is not there.
        iceGatheringTimeout: this.options.iceServers.length ? 5000 : 500,
      },
      delegate: {
        onInvite: (invitation) => this._incoming(invitation),
        onConnect: () => {
          this._reconnects = 0;
          this._register();
        },
        onDisconnect: (error) => {
          if (this._stopping) return;
          this._setRegistration(Registration.RECONNECTING, error ? String(error.message || error) : "disconnected");
          this._scheduleReconnect();
        },
      },
    });
    this._registerer = new Registerer(this._userAgent, { expires: REGISTER_EXPIRES_S });
    this._registerer.stateChange.addListener((state) => {
      if (state === RegistererState.Registered) this._setRegistration(Registration.REGISTERED, null);
      else if (state === RegistererState.Unregistered && this.registration === Registration.REGISTERED) {
        this._setRegistration(Registration.OFFLINE, null);
      }
    });
    this._stopping = false;
    this._setRegistration(Registration.CONNECTING, null);
    try {
      await this._userAgent.start(); // onConnect registers
    } catch (error) {
      this._setRegistration(Registration.RECONNECTING, String(error.message || error));
      this._scheduleReconnect();
    }
  }

  /** Unregister and close the WebSocket (hangs up a call in progress). */
  async stop() {
    this._stopping = true;
    clearTimeout(this._reconnectTimer);
    this.hangUp();
    if (this._registerer && this.registration === Registration.REGISTERED) {
      try { await this._registerer.unregister(); } catch (_) { /* closing anyway */ }
    }
    if (this._userAgent) await this._userAgent.stop();
    this._setRegistration(Registration.OFFLINE, null);
  }

  /** Answer the ringing call. */
  answer() {
    const session = this._session;
    if (!session || this.callState !== CallState.RINGING) return false;
    this._setCall(CallState.CONNECTING);
    session.accept({
      sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
    }).catch((error) => this._fail(`answer failed: ${error.message || error}`));
    return true;
  }

  /** Reject a ringing call, or end the call in progress. */
  hangUp() {
    const session = this._session;
    if (!session) return false;
    if (session.state === SessionState.Initial || session.state === SessionState.Establishing) {
      session.reject().catch(() => {});
    } else if (session.state === SessionState.Established) {
      session.bye().catch(() => {});
    }
    return true;
  }

  /** Stop (or resume) sending the microphone; nothing is signalled, the far end hears silence. */
  mute(muted) {
    this.muted = Boolean(muted);
    this._enableSenders(!this.muted && !this.held);
    this._changed();
  }

  /** Put the call on hold (re-INVITE a=sendonly: Asterisk reports ChannelHold) or take it off. */
  async hold(held) {
    const session = this._session;
    if (!session || session.state !== SessionState.Established || this.held === Boolean(held)) return false;
    const options = session.sessionDescriptionHandlerOptionsReInvite;
    session.sessionDescriptionHandlerOptionsReInvite = { ...options, hold: Boolean(held) };
    await new Promise((resolve, reject) => {
      session.invite({
        requestDelegate: {
          onAccept: () => resolve(),
          onReject: () => reject(new Error("hold refused")),
        },
      }).catch(reject);
    });
    this.held = Boolean(held);
    this._enableSenders(!this.muted && !this.held);
    this._changed();
    return true;
  }

  /** Send DTMF digits in the media (RFC 4733), as the endpoints expect (dtmf_mode = rfc4733). */
  sendDtmf(digits) {
    const handler = this._session && this._session.sessionDescriptionHandler;
    if (!handler || this.callState !== CallState.ACTIVE) return false;
    return handler.sendDtmf(String(digits), { duration: 160, interToneGap: 80 });
  }

  /** The call's WebRTC statistics, summarised: audio received and sent, codec, ICE pair. */
  async stats() {
    const handler = this._session && this._session.sessionDescriptionHandler;
    const connection = handler && handler.peerConnection;
    if (!connection) return null;
    const report = await connection.getStats();
    const summary = { inbound: null, outbound: null, source: null, codec: null, candidatePair: null };
    const codecs = new Map();
    report.forEach((entry) => {
      if (entry.type === "codec") codecs.set(entry.id, entry.mimeType);
    });
    report.forEach((entry) => {
      if (entry.type === "inbound-rtp" && entry.kind === "audio") {
        summary.inbound = {
          packetsReceived: entry.packetsReceived,
          bytesReceived: entry.bytesReceived,
          packetsLost: entry.packetsLost,
          jitter: entry.jitter,
          audioLevel: entry.audioLevel,
          totalAudioEnergy: entry.totalAudioEnergy,
          totalSamplesDuration: entry.totalSamplesDuration,
        };
        summary.codec = codecs.get(entry.codecId) || null;
      } else if (entry.type === "outbound-rtp" && entry.kind === "audio") {
        summary.outbound = { packetsSent: entry.packetsSent, bytesSent: entry.bytesSent };
      } else if (entry.type === "media-source" && entry.kind === "audio") {
        summary.source = { audioLevel: entry.audioLevel, totalAudioEnergy: entry.totalAudioEnergy };
      } else if (entry.type === "candidate-pair" && entry.nominated && entry.state === "succeeded") {
        summary.candidatePair = { localCandidateId: entry.localCandidateId, remoteCandidateId: entry.remoteCandidateId };
      }
    });
    return summary;
  }

  // -- internals ------------------------------------------------------------------------------

  async _checkMicrophone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.microphone = Microphone.DENIED;
      this.lastError = "this page is not a secure context (https, or http://127.0.0.1): no microphone";
      this._changed();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      stream.getTracks().forEach((track) => track.stop());
      this.microphone = Microphone.GRANTED;
    } catch (error) {
      this.microphone = Microphone.DENIED;
      this.lastError = `microphone: ${error.name || error}`;
    }
    this._changed();
  }

  _scheduleReconnect() {
    clearTimeout(this._reconnectTimer);
    const delay = RECONNECT_DELAYS_MS[Math.min(this._reconnects, RECONNECT_DELAYS_MS.length - 1)];
    this._reconnects += 1;
    this._reconnectTimer = setTimeout(() => {
      if (this._stopping || !this._userAgent) return;
      this._userAgent.reconnect().catch(() => this._scheduleReconnect());
    }, delay);
  }

  _register() {
    if (!this._registerer) return;
    this._setRegistration(Registration.CONNECTING, null);
    // Set from the REGISTER's own answer: after a reconnect the Registerer is still in its
    // Registered state, so its stateChange does not fire again.
    this._registerer.register({
      requestDelegate: {
        onAccept: () => this._setRegistration(Registration.REGISTERED, null),
        onReject: (response) => {
          const message = response.message;
          this._setRegistration(Registration.FAILED, `${message.statusCode} ${message.reasonPhrase}`);
        },
      },
    }).catch((error) => this._setRegistration(Registration.FAILED, String(error.message || error)));
  }

  _incoming(invitation) {
    if (this._session) {
      invitation.reject({ statusCode: 486 }).catch(() => {});
      return;
    }
    this._session = invitation;
    this.muted = false;
    this.held = false;
    const identity = invitation.remoteIdentity;
    this.caller = { name: identity.displayName || null, number: identity.uri.user || null };
    invitation.stateChange.addListener((state) => {
      if (state === SessionState.Established) {
        this.callsAnswered += 1;
        this._playRemote(invitation);
        this._setCall(CallState.ACTIVE);
      } else if (state === SessionState.Terminated) {
        this._session = null;
        this.held = false;
        this._setCall(CallState.ENDED);
      }
    });
    this._setCall(CallState.RINGING);
    if (this.options.autoAnswer) this.answer();
  }

  _playRemote(session) {
    const audio = this.options.audio;
    const handler = session.sessionDescriptionHandler;
    if (!audio || !handler) return;
    audio.srcObject = handler.remoteMediaStream;
    audio.play().catch((error) => { this.lastError = `audio playback: ${error.name || error}`; this._changed(); });
  }

  _enableSenders(enabled) {
    const handler = this._session && this._session.sessionDescriptionHandler;
    if (handler) handler.enableSenderTracks(enabled);
  }

  _fail(message) {
    this.lastError = message;
    this._changed();
  }

  _setRegistration(state, error) {
    this.registration = state;
    if (error !== null) this.lastError = error;
    else if (state === Registration.REGISTERED) this.lastError = null; // recovered
    this._changed();
  }

  _setCall(state) {
    this.callState = state;
    this._changed();
  }

  _changed() {
    this.dispatchEvent(new CustomEvent("change", { detail: this.status() }));
  }
}
