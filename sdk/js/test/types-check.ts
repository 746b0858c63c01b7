// Compiled by `npm run check` (tsc --noEmit) against switchboard.d.ts: each
// use of the API a page makes, and what the declarations must refuse.

import { connect, Room, SwitchboardError } from '../switchboard.js';
import type {
  ConnectionQuality,
  DataMessage,
  LeaveReason,
  LocalTrack,
  ParticipantInfo,
  TrackInfo,
  TrackSubscription,
} from '../switchboard.js';

export async function meeting(url: string, token: string, routeUrl: string): Promise<void> {
  const room: Room = await connect(url, token, { routeUrl });
  const me: ParticipantInfo | null = room.localParticipant;
  console.log(room.room.name, me?.identity, room.participants.size, room.options.autoSubscribe);

  const off: () => boolean = room.on('participant_joined', (p) => console.log(p.identity, p.tracks.length));
  off();
  room.on('participant_left', (p, reason: LeaveReason) => console.log(p.sid, p.identity, reason));
  room.on('participant_updated', (p) => console.log(p.permissions.can_publish, p.metadata));
  room.on('track_published', ({ participant, track }) => console.log(participant?.identity, track.kind, track.mime_type));
  room.on('track_unpublished', ({ participantSid, trackSid }) => console.log(participantSid, trackSid));
  room.on('track_subscribed', ({ track, stream, participant, trackInfo }: TrackSubscription) => {
    const el = document.createElement(track.kind === 'video' ? 'video' : 'audio');
    el.srcObject = stream ?? new MediaStream([track]);
    console.log(participant.sid, trackInfo.sid);
  });
  room.on('track_unsubscribed', ({ track }) => track.stop());
  room.on('track_muted', ({ trackSid, muted }) => console.log(trackSid, muted));
  room.on('active_speakers', (speakers) => speakers.forEach((s) => console.log(s.sid, s.level.toFixed(2))));
  room.on('connection_quality', (updates) => {
    for (const u of updates) {
      const q: ConnectionQuality = u.quality;
      console.log(u.sid, q);
    }
  });
  room.on('data', (m: DataMessage) => console.log(m.from ?? 'server', m.topic, m.payload.length, m.reliable));
  room.on('reconnecting', () => console.log('reconnecting'));
  room.on('reconnected', () => console.log('reconnected'));
  room.on('ice_restart', () => console.log('ice restart'));
  room.on('disconnected', (reason) => console.log(reason.toUpperCase()));
  room.on('error', (e) => console.log(e.code, e.message, e instanceof SwitchboardError));

  const cam: LocalTrack = await room.publishCamera({ width: 640 }, { simulcast: true });
  const mic = await room.publishMicrophone(true);
  const screen: LocalTrack[] = await room.publishScreen();
  const info: TrackInfo = cam.info;
  console.log(info.source, mic.sender, screen.length, room.localTracks.get(cam.sid)?.track.id);
  const media = await navigator.mediaDevices.getUserMedia({ audio: true });
  const [track] = media.getAudioTracks();
  if (track) await room.publishTrack(track, { source: 'microphone', name: 'second mic' });

  room.setMuted(mic.sid, true);
  room.subscribe([cam.sid], false);
  room.setLayer(cam.sid, 'low');
  room.updateMetadata({ metadata: '{"hand":true}' });
  room.updateMetadata({ name: 'Ann' });
  room.removeParticipant('bob');
  room.muteParticipant('bob', 'tr_x');
  room.muteParticipant('bob', 'tr_x', false);
  room.updateParticipant('bob', { permissions: { can_publish: false, can_subscribe: true, can_publish_data: true } });
  room.sendData('hello', { topic: 'chat', reliable: false });
  try {
    room.sendData('x'.repeat(20000));
  } catch (e) {
    if (e instanceof SwitchboardError) console.log(e.code);
  }
  const stats = await room.subscriber?.getStats();
  console.log(stats?.size);
  await room.restartIce();
  room.leave();

  // What the declarations refuse.
  // @ts-expect-error: no such event
  room.on('track_added', () => {});
  // @ts-expect-error: handlers get the event's own arguments
  room.on('disconnected', (reason: number) => reason);
  // @ts-expect-error: layers are low, medium or high
  room.setLayer(cam.sid, 'full');
  // @ts-expect-error: data payloads are strings
  room.sendData({ hello: 1 });
  // @ts-expect-error: permissions come whole
  room.updateParticipant('bob', { permissions: { can_publish: true } });
  // @ts-expect-error: not an option
  await connect(url, token, { autoConnect: true });
}
