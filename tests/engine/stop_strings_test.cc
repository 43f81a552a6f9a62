// StopStrings: matches across pushes, holds back partial matches, never loses text.
#include "engine/sampling/stop_strings.h"

#include <gtest/gtest.h>

namespace quilt::engine {
namespace {

TEST(StopStringsTest, NoStopsPassesEverythingThrough) {
  StopStrings s({});
  EXPECT_EQ(s.push("abc"), "abc");
  EXPECT_EQ(s.finish(), "");
  EXPECT_FALSE(s.matched());
}

TEST(StopStringsTest, MatchAcrossPushesCutsBeforeTheStop) {
  StopStrings s({"END"});
  EXPECT_EQ(s.push("hello E"), "hello ");  // "E" may start END: held back
  EXPECT_EQ(s.push("N"), "");
  EXPECT_EQ(s.push("D and more"), "");
  EXPECT_TRUE(s.matched());
  EXPECT_EQ(s.push("later"), "");
  EXPECT_EQ(s.finish(), "");
}

TEST(StopStringsTest, HeldBackTextIsReleasedWhenItStopsMatching) {
  StopStrings s({"END"});
  EXPECT_EQ(s.push("xE"), "x");
  EXPECT_EQ(s.push("Nd"), "ENd");
  EXPECT_FALSE(s.matched());
  EXPECT_EQ(s.push("E"), "");
  EXPECT_EQ(s.finish(), "E");
}

TEST(StopStringsTest, EarliestOfSeveralStopsWins) {
  StopStrings s({"world", "lo"});
  EXPECT_EQ(s.push("hello world"), "hel");
  EXPECT_TRUE(s.matched());
}

TEST(StopStringsTest, EmptyStopStringsAreIgnored) {
  StopStrings s({""});
  EXPECT_EQ(s.push("abc"), "abc");
  EXPECT_FALSE(s.matched());
}

}  // namespace
}  // namespace quilt::engine
