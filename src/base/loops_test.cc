// base::LoopGroup::Post inside a base::PostBatch: deferred to the batch's
// end, then in order per loop. What runs first is decided by the order of
// the posts, not by timing: a handler posted past the batch (asio::post
// directly) runs before the batched ones only if they were held back.
#include "base/loops.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <string>
#include <vector>

namespace onlined::base {
namespace {

class LoopsTest : public ::testing::Test {
 protected:
  LoopsTest() { loops_.Start(); }
  ~LoopsTest() override { loops_.Stop(); }

  auto Record(std::string what) {
    return [this, what = std::move(what)] {
      std::lock_guard lock(mu_);
      seen_[Loop::Current()->index()].push_back(what);
    };
  }
  // Returns once each loop has run what was posted to it before.
  void Drain() {
    for (size_t i = 0; i < loops_.size(); ++i) {
      std::promise<void> p;
      boost::asio::post(loops_.at(i).io(), [&p] { p.set_value(); });
      p.get_future().wait();
    }
  }
  std::vector<std::string> Seen(size_t loop) {
    std::lock_guard lock(mu_);
    return seen_[loop];
  }

  LoopGroup loops_{2};
  std::mutex mu_;
  std::vector<std::string> seen_[2];
};

TEST_F(LoopsTest, PostsRunAtOnceOutsideABatch) {
  loops_.Post(0, Record("posted"));
  boost::asio::post(loops_.at(0).io(), Record("direct"));
  Drain();
  EXPECT_EQ(Seen(0), (std::vector<std::string>{"posted", "direct"}));
}

TEST_F(LoopsTest, ABatchHoldsItsPostsUntilItEnds) {
  {
    PostBatch batch;
    EXPECT_TRUE(PostBatch::Active());
    loops_.Post(0, Record("batched"));
    boost::asio::post(loops_.at(0).io(), Record("direct"));
    Drain();
    EXPECT_EQ(Seen(0), (std::vector<std::string>{"direct"}));
  }
  EXPECT_FALSE(PostBatch::Active());
  Drain();
  EXPECT_EQ(Seen(0), (std::vector<std::string>{"direct", "batched"}));
}

TEST_F(LoopsTest, ABatchKeepsTheOrderPerLoopAndComesBeforeLaterPosts) {
  {
    PostBatch batch;
    loops_.Post(0, Record("a1"));
    loops_.Post(1, Record("b1"));
    loops_.Post(0, Record("a2"));
    loops_.Post(1, Record("b2"));
    loops_.Post(0, Record("a3"));
  }
  loops_.Post(0, Record("after"));
  Drain();
  EXPECT_EQ(Seen(0), (std::vector<std::string>{"a1", "a2", "a3", "after"}));
  EXPECT_EQ(Seen(1), (std::vector<std::string>{"b1", "b2"}));
}

TEST_F(LoopsTest, AnInnerBatchJoinsTheOuterOne) {
  {
    PostBatch outer;
    {
      PostBatch inner;
      loops_.Post(0, Record("inner"));
    }
    EXPECT_TRUE(PostBatch::Active());
    boost::asio::post(loops_.at(0).io(), Record("direct"));
    Drain();
    EXPECT_EQ(Seen(0), (std::vector<std::string>{"direct"}));
  }
  Drain();
  EXPECT_EQ(Seen(0), (std::vector<std::string>{"direct", "inner"}));
}

TEST_F(LoopsTest, ABatchCarriesMoveOnlyHandlers) {
  auto owned = std::make_unique<std::string>("owned");
  {
    PostBatch batch;
    loops_.Post(1, [this, owned = std::move(owned)] { Record (*owned)(); });
  }
  Drain();
  EXPECT_EQ(Seen(1), (std::vector<std::string>{"owned"}));
}

TEST_F(LoopsTest, ABatchIsPerThread) {
  PostBatch batch;
  std::thread other([this] { loops_.Post(0, Record("other thread")); });
  other.join();
  Drain();
  EXPECT_EQ(Seen(0), (std::vector<std::string>{"other thread"}));
}

}  // namespace
}  // namespace onlined::base
