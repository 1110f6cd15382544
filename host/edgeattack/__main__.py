from edgeattack.cli import main

main()
