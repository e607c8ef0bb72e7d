#!/usr/bin/env bash
# 安装浏览器测试与 PDF 需要的 Debian 包：chromium（无头浏览器）与 fonts-wqy-microhei（浏览器界面与正文的中文字体）。
# 需要 root（CI 以 root 运行）。已经装好时只做检查，不联网。
set -euo pipefail
packages=(chromium fonts-wqy-microhei)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "系统依赖已安装：${packages[*]}"
  exit 0
fi
start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "已安装 ${missing[*]}，用时 $((SECONDS - start)) 秒。"
