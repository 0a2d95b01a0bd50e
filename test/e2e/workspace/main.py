#!/usr/bin/env python3
import os
import sys


def main():
    
    return 0


if __name__ == "__main__":
    