#pragma once
// The shared engine: PostgreSQL through libpq, for state that several
// onlined processes (the cluster's nodes) write at once. One PostgresDb is
// one connection (see store::Db for the threading rules).
//
// A send is one round trip (the onlined_append function, schema.sql in
// postgres_db.cc); a writer's group is BEGIN, its operations, COMMIT, with
// no savepoint round trips: after a failure the group is redone one
// operation per transaction. A lost connection fails the operation at once
// with DbUnavailable and is reopened by itself (at most every
// kReconnectMs), as is one that gave no answer within the timeout (a
// stopped or hung server keeps the TCP connection open); the server's own fsync at COMMIT makes a
// write durable. Schema migrations are versioned (table onlined_schema) and applied by the writer
// under an advisory lock, so two nodes starting at once do not race.
#include <memory>
#include <string>

#include "store/db.h"

namespace onlined::store {

// The schema version this build knows.
int PostgresSchemaVersion();

// Connects to `url` (a libpq URL or key=value string). The writer applies
// missing migrations; a database with a newer schema than this build knows
// is refused. Throws DbError (DbUnavailable if the server cannot be reached).
// `timeout_ms` bounds every wait for the server's answer (and a connection
// attempt): past it the server counts as unreachable (0: wait for ever).
std::unique_ptr<Db> OpenPostgres(const std::string& url, bool writer, int64_t timeout_ms = 750);

}  // namespace onlined::store
