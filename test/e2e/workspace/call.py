#!/usr/bin/env python3
import os
import sys


def show(path):
    name = os.path.basename(path)
    print()
