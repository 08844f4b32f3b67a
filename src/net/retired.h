#pragma once
// DropRetired: a FIFO kept as a vector and a head index (the entries before
// `head` are done) sheds its done entries once they are at least half of it
// and more than a few. Without it a queue that never empties (a peer that
// reads just slower than it is written to, for hours) keeps every entry it
// ever held. Amortised O(1) per entry; it moves entries, so no pointer into
// the vector may be held across it.
#include <cstddef>
#include <vector>

namespace onlined::net {

template <class T>
void DropRetired(std::vector<T>& v, size_t& head, size_t slack = 64) {
  if (head < slack || 2 * head < v.size()) return;
  v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(head));
  head = 0;
}

}  // namespace onlined::net
