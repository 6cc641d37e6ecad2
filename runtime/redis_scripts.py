"""The Lua scripts of the Redis store (runtime/redis_store.py), each one atomic on the server.

Key layout: every key of a stream carries the stream's name as its hash tag, so a script
that touches a stream and what lies beside it touches one hash slot:

    interlock:{NAME}            the stream (entries are JSON text in a field `e`)
    interlock:{NAME}:retries    its delayed schedule, a sorted set scored by due time; a
                                member is a 32-character token followed by the entry
    interlock:{NAME}:lease      a lease (`lease`)
    interlock:{NAME}:members    a membership (sorted set scored by expiry)
    interlock:{NAME}:once:W:N   the stream's idempotency record of window N (W ms long): a
                                hash from idempotency key to the publish that appended it
    interlock:{GROUP}:lease:N   the lease N of a group (`lease_many`: the partitions of an
                                ordered target, in the slot of its membership)
    interlock:once:{KEY}        an idempotency key remembered on its own (`remember`: a
                                publish with nothing to append, a sync target's turn)

Every script and multi-key command touches the keys of one hash slot, declared in KEYS, so
the same layout runs on a single server and on a cluster.
"""

from __future__ import annotations

# What a group (or, without a name, the busiest group) has still to finish on a stream:
# pending plus not yet read; a stream without the group has all its entries to finish.
UNFINISHED = """
local function unfinished(key, name)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', key)
  if not ok then return 0 end
  local most = 0
  local found = false
  for _, group in ipairs(groups) do
    local info = {}
    for j = 1, #group, 2 do info[group[j]] = group[j + 1] end
    if name == nil or info['name'] == name then
      found = true
      local lag = info['lag']
      if not lag then
        lag = #redis.call('XRANGE', key, '(' .. info['last-delivered-id'], '+')
      end
      most = math.max(most, info['pending'] + lag)
    end
  end
  if name ~= nil and not found then return redis.call('XLEN', key) end
  return most
end
"""

# Publishes, each with its entries appended and remembered in one step, or nothing.
# Concurrent publishes share one call; a publish whose streams lie in several hash slots (a
# cluster) makes one call per slot, each all or nothing. ARGV[1]: the bound (0: none); then
# per publish: remember (1/0), its idempotency key, its nonce, when its records expire (ms,
# absolute), its number of streams P, and per stream its number of entries N and N encoded
# entries. KEYS, per stream: the stream, its record of this window, its record of the window
# before. A stream's record (a hash beside it, one per window of time: interlock:{NAME}:once:
# WINDOW:N) maps an idempotency key to the nonce of the publish that appended it and the
# entries' ids: a stream already holding the key appends nothing again, and a publish sent
# again after a lost connection finds its own nonce and gets its ids back. Returns per
# publish, when every stream is fine, per stream {'+', ids...} (appended by this publish) or
# {'=', ids...} (by an earlier one); else {'full', stream} when a bounded stream has no room
# or {'wrongtype', key, type} when a key is not what it should be, having written nothing.
APPEND = UNFINISHED + """
local bound = tonumber(ARGV[1])
local kinds = {}  -- each key's type, asked once per call (publishes of a call share streams)
local function kind_of(key)
  local kind = kinds[key]
  if kind == nil then
    kind = redis.call('TYPE', key)['ok']
    kinds[key] = kind
  end
  return kind
end
local out = {}
local k, a = 1, 2
while a <= #ARGV do
  local keep, once, nonce, expire_at = ARGV[a] == '1', ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local parts = tonumber(ARGV[a + 4])
  a = a + 5
  local plan = {}  -- per stream: its key, its records' keys, where its entries start, how many
  for p = 1, parts do
    local n = tonumber(ARGV[a])
    plan[p] = {KEYS[k], KEYS[k + 1], KEYS[k + 2], a + 1, n}
    k = k + 3
    a = a + 1 + n
  end
  -- A script that fails half-way keeps what it wrote: every key is checked before any write.
  local failed = nil
  local results = {}
  for p, part in ipairs(plan) do
    if keep then
      for j = 2, 3 do
        if failed == nil and results[p] == nil then
          local ok, seen = pcall(redis.call, 'HGET', part[j], once)
          if not ok then
            failed = {'wrongtype', part[j], redis.call('TYPE', part[j])['ok']}
          elseif seen then
            local owner, ids = string.match(seen, '^(%S+) ?(.*)$')
            local result = {owner == nonce and '+' or '='}
            for id in string.gmatch(ids, '%S+') do result[#result + 1] = id end
            results[p] = result
          end
        end
      end
    end
    if failed == nil and results[p] == nil then
      local kind = kind_of(part[1])
      if kind ~= 'stream' and kind ~= 'none' then
        failed = {'wrongtype', part[1], kind}
      elseif bound > 0 and unfinished(part[1], nil) >= bound then
        failed = {'full', part[1]}
      end
    end
  end
  if failed ~= nil then
    out[#out + 1] = failed
  else
    for p, part in ipairs(plan) do
      if results[p] == nil then
        local result = {'+'}
        for i = 1, part[5] do result[i + 1] = redis.call('XADD', part[1], '*', 'e', ARGV[part[4] + i - 1]) end
        if keep then
          redis.call('HSET', part[2], once, nonce .. ' ' .. table.concat(result, ' ', 2))
          redis.call('PEXPIREAT', part[2], expire_at)
        end
        kinds[part[1]] = 'stream'
        results[p] = result
      end
    end
    out[#out + 1] = results
  end
end
return out
"""

# A stream's due retries into the stream, at most 100 a call, atomically. KEYS: the
# schedule, the stream; ARGV: now (ms). Returns {moved, the next due time or -1}.
RELEASE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'e', string.sub(member, 33))
  redis.call('ZREM', KEYS[1], member)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #next == 0 then return {#due, -1} end
return {#due, next[2]}
"""

# Whether a group has nothing left to do on a stream: nothing pending or unread, nothing
# scheduled. KEYS: the stream, its schedule; ARGV: the group. Returns 1 when quiet.
QUIET = UNFINISHED + """
if unfinished(KEYS[1], ARGV[1]) > 0 then return 0 end
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
return 1
"""

# What a group has to do on one stream, read in one step; writes nothing. KEYS: the stream,
# its schedule; ARGV: the group. Returns {length, scheduled, 1 when the group exists, unread,
# pending, the oldest entry still to finish or '', {consumer, its pending count, ...}}.
STATS = """
local length = redis.call('XLEN', KEYS[1])
local scheduled = redis.call('ZCARD', KEYS[2])
local info = nil
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for j = 1, #group, 2 do fields[group[j]] = group[j + 1] end
    if fields['name'] == ARGV[1] then info = fields end
  end
end
if info == nil then
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  return {length, scheduled, 0, length, 0, first[1] and first[1][1] or '', {}}
end
local after = '(' .. info['last-delivered-id']
local unread = info['lag']
if not unread then unread = #redis.call('XRANGE', KEYS[1], after, '+') end
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
local oldest = ''
local consumers = {}
if summary[1] > 0 then
  oldest = summary[2]  -- pending entries all come before the unread ones
  for _, row in ipairs(summary[4]) do
    consumers[#consumers + 1] = row[1]
    consumers[#consumers + 1] = row[2]
  end
elseif unread > 0 then
  local first = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', 1)
  if first[1] then oldest = first[1][1] end
end
return {length, scheduled, 1, unread, summary[1], oldest, consumers}
"""

# Acknowledgements of concurrent callers, in one call. KEYS: a stream per call; ARGV per
# call: the group, the number of ids N, the N ids. Returns per call how many were pending
# (0 when the group does not exist).
ACK = """
local out = {}
local a = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[a + 1])
  local ok, acked = pcall(redis.call, 'XACK', KEYS[k], ARGV[a], unpack(ARGV, a + 2, a + 1 + n))
  out[k] = ok and acked or 0
  a = a + 2 + n
end
return out
"""

# Take a free lease, or renew one's own; 1 when held, 0 when another owner holds it.
LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# `LEASE` for several keys of one hash slot (the partitions of one target): KEYS: the leases;
# ARGV: the owner, the ttl. Returns per key 1 when held, 0 when another owner holds it.
LEASE_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  elseif redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Heartbeats in memberships (sorted sets scored by expiry), of concurrent callers in one
# call: each owner recorded, the expired dropped, the live listed. Time is the server's, so
# that instances whose clocks disagree still agree on who is live. KEYS: a membership per
# call; ARGV per call: the owner's time to live (ms), the owner.
MEMBERS = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out = {}
for k = 1, #KEYS do
  local a = 2 * (k - 1)
  redis.call('ZADD', KEYS[k], now + tonumber(ARGV[a + 1]), ARGV[a + 2])
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now)
  out[k] = redis.call('ZRANGE', KEYS[k], 0, -1)
end
return out
"""

# The live members of a membership, read with the clock of its server. KEYS: the membership.
LIVE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""
