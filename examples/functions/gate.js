// A guest-list gate for joins, with a join counter.
//
// participant.joining (synchronous, before admission): admits identities
// listed in the project's key-value store under `guest:<identity>` and refuses
// everyone else with a reason the client sees. A listed guest's value may be
// JSON such as {"name": "Ann (host)", "can_publish": false} to change how they
// are admitted.
//
// participant.joined (asynchronous, from the event log): counts joins per room
// under `joins:<room>`. Handlers run at least once; the event id is kept so a
// repeated delivery is not counted twice.
import { log, kvGet, kvSet } from 'switchboard:functions/host@0.1.0';

function parseGuest(value) {
  try {
    const v = JSON.parse(value);
    return typeof v === 'object' && v !== null ? v : {};
  } catch {
    return {};
  }
}

export const handler = {
  onJoining(request) {
    const value = kvGet(`guest:${request.identity}`);
    if (value === undefined) {
      log('info', `refused ${request.identity} in ${request.room}: not on the guest list`);
      return { tag: 'deny', val: `${request.identity} is not on the guest list` };
    }
    const guest = parseGuest(value);
    log('info', `admitted ${request.identity} in ${request.room}`);
    if (guest.name === undefined && guest.can_publish === undefined) {
      return { tag: 'allow' };
    }
    return {
      tag: 'admit',
      val: {
        name: guest.name,
        metadata: undefined,
        permissions: guest.can_publish === undefined ? undefined : {
          canPublish: Boolean(guest.can_publish),
          canSubscribe: request.permissions.canSubscribe,
          canPublishData: request.permissions.canPublishData,
        },
      },
    };
  },

  onEvent(event) {
    if (event.type !== 'participant.joined' || event.room === undefined) return;
    const seenKey = `joins:${event.room}:last`;
    if (kvGet(seenKey) === event.id) return; // a repeated delivery
    const count = Number(kvGet(`joins:${event.room}`) ?? '0') + 1;
    kvSet(`joins:${event.room}`, String(count));
    kvSet(seenKey, event.id);
    console.log(`room ${event.room} has had ${count} joins`);
  },
};
