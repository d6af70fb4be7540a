from hf_spamguard.cli import main

main()
