// seed: fills a store with user chats and messages for the benchmarks
// (100,000 chats and 1,000,000 messages in seconds, not the server's path:
// big transactions through the store seam for SQLite; for PostgreSQL the
// same rows made by the server itself from generate_series, since a round
// trip per row takes minutes). Writes "<user> <chat_id> <last seq>" lines
// for the load users (the loader's --resume names that seq in its hello).
//
//   seed --data-dir D | --postgres-url URL  --channel bench --chats 100000
//        --messages 1000000 --load-users 2000 --out chats.txt [--acked 1]
//
// --acked 1 (SQLite): every seeded message acked by its user, as a long-lived
// chat's history is (the deliver scenario's --deliver-history).
#include <libpq-fe.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "chat/messages.h"
#include "store/postgres/postgres_db.h"
#include "store/sqlite/sqlite_db.h"

namespace {

// The rows SQLite gets below, made in the server (the schema is migrated by
// opening the engine first). Chat ids are c_seed<n>: fixed, not random.
int SeedPostgres(const std::string& url, const std::string& channel, long chats, long messages,
                 long load_users, const std::string& out) {
  onlined::store::OpenPostgres(url, true);  // creates the schema
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "seed: %s", PQerrorMessage(c));
    return 1;
  }
  const long per_chat = messages / chats;
  const std::string n = std::to_string(chats), k = std::to_string(per_chat),
                    load = std::to_string(load_users);
  const std::string user = "CASE WHEN i < " + load + " THEN 'u' || i ELSE 'x' || i END";
  const std::string sql =
      "BEGIN;"
      "INSERT INTO chats(chat_id, channel, user_id, created_at, last_seq, updated_at)"
      " SELECT 'c_seed' || i, '" +
      channel + "', " + user + ", 1700000000000 + i, " + k + ", 1700000000000 + i * 10 + " + k +
      " FROM generate_series(0, " + n +
      " - 1) i;"
      "INSERT INTO messages(chat_id, seq, id, from_role, sender_id, text, created_at)"
      " SELECT 'c_seed' || i, s, 'm_seed' || i || '_' || s,"
      " CASE WHEN s % 2 = 1 THEN 'user' ELSE 'manager' END,"
      " CASE WHEN s % 2 = 1 THEN " +
      user +
      " ELSE 'm1' END,"
      " 'seeded message ' || s || ' of a conversation about an order',"
      " 1700000000000 + i * 10 + s FROM generate_series(0, " +
      n + " - 1) i, generate_series(1, " + k +
      ") s;"
      "COMMIT;";
  // Then the seeded tables as in a database that has been running a while:
  // vacuumed (no autovacuum pass over a million new rows during the
  // measurement) and analyzed; then a checkpoint. The empty tables are left
  // as a new database has them (never analyzed): analyzed empty, the
  // planner would cache plans for empty tables (sequential scans) in the
  // server's sessions while they fill up.
  bool ok = true;
  for (const char* q :
       {sql.c_str(), "VACUUM ANALYZE chats", "VACUUM ANALYZE messages", "CHECKPOINT"}) {
    PGresult* r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      fprintf(stderr, "seed: %s", PQresultErrorMessage(r));
      ok = false;
    }
    PQclear(r);
    if (!ok) break;
  }
  PQfinish(c);
  if (!ok) return 1;
  std::ofstream users(out);
  for (long i = 0; i < load_users; ++i)
    users << "u" << i << " c_seed" << i << " " << per_chat << "\n";
  fprintf(stderr, "seed: done: %ld chats, %ld messages\n", chats, chats * per_chat);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, url, channel = "bench", out = "chats.txt";
  long chats = 100000, messages = 1000000, load_users = 2000;
  bool acked = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--data-dir")
      dir = v;
    else if (a == "--postgres-url")
      url = v;
    else if (a == "--channel")
      channel = v;
    else if (a == "--chats")
      chats = std::stol(v);
    else if (a == "--messages")
      messages = std::stol(v);
    else if (a == "--load-users")
      load_users = std::stol(v);
    else if (a == "--out")
      out = v;
    else if (a == "--acked")
      acked = v == "1";
    else {
      fprintf(stderr, "seed: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (dir.empty() == url.empty() || chats < load_users) {
    fprintf(stderr, "seed: one of --data-dir, --postgres-url, and --chats >= --load-users\n");
    return 2;
  }
  if (acked && !url.empty()) {
    fprintf(stderr, "seed: --acked is for SQLite only\n");
    return 2;
  }
  if (!url.empty()) return SeedPostgres(url, channel, chats, messages, load_users, out);
  auto db = onlined::store::OpenSqlite(dir, true);
  std::ofstream users(out);
  const long per_chat = messages / chats;
  long written = 0;
  int64_t t = 1700000000000;
  db->Begin();
  for (long i = 0; i < chats; ++i) {
    onlined::store::Chat c;
    c.chat_id = onlined::chat::NewId("c_");
    c.channel = channel;
    c.user_id = i < load_users ? "u" + std::to_string(i) : "x" + std::to_string(i);
    c.created_at = c.updated_at = t + i;
    db->InsertChat(c);
    if (i < load_users) users << c.user_id << " " << c.chat_id << " " << per_chat << "\n";
    for (long s = 1; s <= per_chat; ++s) {
      onlined::store::Message m;
      m.id = onlined::chat::NewId("m_");
      m.chat_id = c.chat_id;
      m.seq = s;
      m.from = s % 2 ? "user" : "manager";
      m.sender_id = s % 2 ? c.user_id : "m1";
      m.text = "seeded message " + std::to_string(s) + " of a conversation about an order";
      m.created_at = t + i * 10 + s;
      db->InsertMessage(m);
      ++written;
    }
    db->UpdateChatAfterMessage(c.chat_id, per_chat, t + i * 10 + per_chat, false);
    if (acked && per_chat > 0) db->RaiseUserAck(c.chat_id, per_chat, t + i * 10 + per_chat + 1);
    if (i % 20000 == 19999) {
      db->Commit();
      db->Begin();
      fprintf(stderr, "seed: %ld chats, %ld messages\n", i + 1, written);
    }
  }
  db->Commit();
  fprintf(stderr, "seed: done: %ld chats, %ld messages\n", chats, written);
  return 0;
}
