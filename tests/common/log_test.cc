// common/log.h: text and JSON line formats, levels, output redirection.
#include "common/log.h"

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace splitinfer::log {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetName("logtest");
    SetLevel("info");
    SetOutputStream(&out_);
  }
  void TearDown() override {
    SetOutputStream(nullptr);
    SetFormat("text");
  }
  std::ostringstream out_;
};

TEST_F(LogTest, JsonLineIsOneValidObjectWithEscapes) {
  ASSERT_TRUE(SetFormat("json"));
  const std::string message = "say \"hi\"\nsecond line\ttab \\ back\x01 end";
  Info(message);
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  const nlohmann::json j = nlohmann::json::parse(lines[0]);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.size(), 4u);
  EXPECT_EQ(j.at("msg"), message);
  EXPECT_EQ(j.at("level"), "info");
  EXPECT_EQ(j.at("logger"), "logtest");
  const std::string ts = j.at("ts");
  EXPECT_TRUE(std::regex_match(ts, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))) << ts;
  // Keys in a fixed order, so that the lines read well too.
  EXPECT_EQ(lines[0].rfind("{\"ts\":", 0), 0u) << lines[0];
}

TEST_F(LogTest, JsonLevelsAndFiltering) {
  ASSERT_TRUE(SetFormat("json"));
  Debug("hidden at info");
  Warn("w");
  Error("e");
  ASSERT_TRUE(SetLevel("debug"));
  Debug("d");
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_EQ(nlohmann::json::parse(lines[0]).at("level"), "warn");
  EXPECT_EQ(nlohmann::json::parse(lines[1]).at("level"), "error");
  EXPECT_EQ(nlohmann::json::parse(lines[2]).at("level"), "debug");
  EXPECT_EQ(nlohmann::json::parse(lines[2]).at("msg"), "d");
}

TEST_F(LogTest, InvalidUtf8IsReplacedNotThrown) {
  ASSERT_TRUE(SetFormat("json"));
  Info(std::string("bad \xff\xfe byte"));
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0]).at("msg"), "bad \xEF\xBF\xBD\xEF\xBF\xBD byte");
}

TEST_F(LogTest, TextFormatAndNameSurviveFormatSwitch) {
  ASSERT_TRUE(SetFormat("json"));
  ASSERT_TRUE(SetFormat("text"));
  SetName("other");
  Info("plain message");
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  EXPECT_NE(lines[0].find("[other]"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("[info]"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("plain message"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find('{'), std::string::npos) << lines[0];
}

TEST_F(LogTest, UnknownNamesAreRefused) {
  EXPECT_FALSE(SetFormat("xml"));
  EXPECT_FALSE(SetLevel("loud"));
}

}  // namespace
}  // namespace splitinfer::log
