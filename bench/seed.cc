// seed: fills a store with user chats and messages for the benchmarks
// (100,000 chats and 1,000,000 messages: big transactions through the store
// seam, not the server's path). Writes "<user> <chat_id>" lines for the
// load users. SQLite in a data dir, or a PostgreSQL database.
//
//   seed --data-dir D | --postgres-url URL  --channel bench --chats 100000
//        --messages 1000000 --load-users 2000 --out chats.txt
#include <cstdio>
#include <fstream>
#include <string>

#include "chat/messages.h"
#include "store/postgres/postgres_db.h"
#include "store/sqlite/sqlite_db.h"

int main(int argc, char** argv) {
  std::string dir, url, channel = "bench", out = "chats.txt";
  long chats = 100000, messages = 1000000, load_users = 2000;
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
    else {
      fprintf(stderr, "seed: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (dir.empty() == url.empty() || chats < load_users) {
    fprintf(stderr, "seed: one of --data-dir, --postgres-url, and --chats >= --load-users\n");
    return 2;
  }
  auto db =
      url.empty() ? onlined::store::OpenSqlite(dir, true) : onlined::store::OpenPostgres(url, true);
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
    if (i < load_users) users << c.user_id << " " << c.chat_id << "\n";
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
